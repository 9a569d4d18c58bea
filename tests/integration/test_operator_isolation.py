"""One faulty operator (F=1) against the shipped layout: operator 0's real credentials, attacking.

A whole DON runs on the repo's nats.conf (four nodes, each operator in its own account, the
gateway, vault and echo in theirs). The attacker holds everything operator 0 holds: its
verifier's, ingress's and dispatchers' users. The issue's measured attack (a rogue verifier in
the `verifiers` queue group answering `Verified` to everything) let an untrusted enclave image
get the real secret through the F+1 quorum 14 times in 40 with one shared account; here the
rogue can only ever reach its own node, so the quorum holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import nats
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import bus, rpc, subjects
from tests.conftest import REPO_ROOT
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.membership import RegistryMembership
from workers.gateway.ratelimit import RateLimit
from workers.node.process import NODE_ACTORS, NodeProcess, RunningActor, start_actor
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime import credentials
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

DON = "relay-don"
NODES = ("node-0", "node-1", "node-2", "node-3")
ROGUE, VICTIM = "node-0", "node-1"
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
WAIT_S = 3.0
ATTACK_REQUESTS = 24
SECRET = "s3cr3t-api-key-for-the-demo"

INTERNAL = {"code": -32603, "message": "internal error"}
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    """The repo's nats.conf, exactly as the tests and the demo run it."""
    server = NatsServer(config_file=REPO_ROOT / "nats.conf", jetstream=True)
    server.start_sync()
    try:
        yield server
    finally:
        server.cleanup()


@dataclass
class Don:
    chain: TestChain
    gateway: GatewayActor
    nodes: list[NodeProcess] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def don(server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Don]:
    """Four nodes (F=1) as four operators, vault and echo, the gateway: each as its own users."""
    chain = TestChain()
    root = tmp_path_factory.mktemp("isolation") / "root.pem"
    root.write_bytes(chain.root_pem)
    seed = seed_entries_for(
        seed_with_measurements([chain.trusted_values_json()], members=NODES, f=1)
    )
    for party in (*NODES, "gateway"):
        user, password = credentials.credentials_for("registry-admin", party)
        admin = await connect(server.url, actor="registry-admin", user=user, password=password)
        try:
            await load_entries(admin, seed)
        finally:
            await admin.close()
    nodes: list[NodeProcess] = []
    extras: list[RunningActor] = []
    user, password = credentials.credentials_for("gateway")
    gw_nc = await connect(server.url, actor="gateway", user=user, password=password)
    membership = RegistryMembership(DON)
    gateway: GatewayActor | None = None
    try:
        for name in ("vault", "echo"):
            extras.append(await start_actor(name, NodeSettings(nats_url=server.url)))
        for node in NODES:
            proc = NodeProcess(
                NodeSettings(
                    don=DON, node=node, nats_url=server.url, dev_root_pem=root, request_timeout_s=5
                ),
                actors=tuple(NODE_ACTORS),
            )
            await proc.start()
            nodes.append(proc)
        await membership.start(gw_nc, wait_s=WAIT_S)
        gateway = GatewayActor(
            gw_nc,
            GatewaySettings(
                don=DON,
                # Upstream's per-node limit (10 rps) would refuse part of a burst of attacks.
                handler=HandlerConfig(
                    request_timeout_s=5,
                    per_node_rate=RateLimit(100, 100),
                    global_rate=RateLimit(100, 100),
                ),
            ),
            membership,
        )
        await gateway.start()
        yield Don(chain=chain, gateway=gateway, nodes=nodes)
    finally:
        if gateway is not None:
            await gateway.stop()
        await membership.stop()
        await gw_nc.close()
        for proc in nodes:
            await proc.stop()
        for actor in extras:
            await actor.service.stop()


@dataclass
class Attacker:
    """One of operator 0's users, with what the server refused it."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    async def refused(self, fragment: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if any(
                "permissions violation" in e and fragment.lower() in e.lower() for e in self.errors
            ):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no permissions violation for {fragment!r}: {self.errors}")


@asynccontextmanager
async def operator0(server: NatsServer, actor: str) -> AsyncIterator[Attacker]:
    """Connect with operator 0's real credentials for `actor` (its dev password here)."""
    user, password = credentials.credentials_for(actor, ROGUE)
    attacker = Attacker(nc=None)  # type: ignore[arg-type]

    async def on_error(exc: Exception) -> None:
        attacker.errors.append(str(exc))

    attacker.nc = await nats.connect(
        server.url,
        user=user,
        password=password,
        inbox_prefix=subjects.inbox_prefix(actor),
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=WAIT_S,
    )
    try:
        yield attacker
    finally:
        await attacker.nc.close()


def untrusted_secret_request(chain: TestChain, request_id: str) -> bytes:
    """confidential.secrets.get from an enclave image the registry does not trust."""
    params = {
        "workflow_id": "wf-isolation",
        "owner": OWNER,
        "execution_id": "00" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": enclave_crypto.public_hex(X25519PrivateKey.generate()),
    }
    bound = binding.bind(rpc.MethodSecretsGet, json.dumps(params).encode())
    document = chain.document(user_data=bound.user_data, pcrs=fake_pcrs("untrusted-image"))
    sent = {**params, "attestation": base64.b64encode(document).decode()}
    body = {"jsonrpc": "2.0", "id": request_id, "method": rpc.MethodSecretsGet, "params": sent}
    return json.dumps(body).encode()


async def _tail(nc: Client, subject: str, into: list[Msg]) -> None:
    async def keep(msg: Msg) -> None:
        into.append(msg)

    await nc.subscribe(subject, cb=keep)


async def test_a_rogue_verifier_with_operator_0s_credentials_gets_no_secret_through_the_quorum(
    server: NatsServer, don: Don
) -> None:
    """It answers Verified to node-0's share of requests only; the untrusted image gets 0 secrets."""
    seen: list[str] = []
    async with operator0(server, "verifier") as rogue:
        # Every node's verify subject at once, as in the issue: refused outright.
        wildcard = f"relay.v1.{DON}.*.verify"
        await rogue.nc.subscribe(wildcard, queue=subjects.QUEUE_VERIFIER)
        await rogue.refused(f'subscription to "{wildcard}"')
        victim = subjects.verify(DON, VICTIM)
        await rogue.nc.subscribe(victim, queue=subjects.QUEUE_VERIFIER)
        await rogue.refused(f'subscription to "{victim}"')

        async def answer_verified(msg: Msg) -> None:
            seen.append(msg.subject)
            verdict = bus.Verified(module_id="rogue", timestamp_ms=0, is_debug=False)
            await rogue.nc.publish(msg.reply, bus.ENCODER.encode(verdict))

        # What operator 0 may do: join its own node's verifiers and lie.
        await rogue.nc.subscribe(
            subjects.verify(DON, ROGUE), queue=subjects.QUEUE_VERIFIER, cb=answer_verified
        )
        await rogue.nc.flush()
        answers = await asyncio.gather(
            *(
                don.gateway.serve(untrusted_secret_request(don.chain, f"rogue-verifier-{i}"))
                for i in range(ATTACK_REQUESTS)
            )
        )
    leaked = [a.body for a in answers if b'"result"' in a.body or SECRET.encode() in a.body]
    assert leaked == []
    assert [json.loads(a.body)["error"] for a in answers] == [INTERNAL] * ATTACK_REQUESTS
    # The attack was real: the rogue took some of node-0's requests, and never another node's.
    assert seen, "the rogue verifier received nothing: the attack did not run"
    assert set(seen) == {subjects.verify(DON, ROGUE)}


async def test_a_rogue_ingress_with_operator_0s_credentials_cannot_take_or_answer_node_1s_rpc(
    server: NatsServer, don: Don
) -> None:
    """Subscribing to node-1's rpc is refused; node-1's requests never reach operator 0 at all."""
    got: list[Msg] = []
    async with operator0(server, "ingress") as rogue:
        for subject in (subjects.rpc(DON, VICTIM), f"relay.v1.{DON}.*.rpc"):
            await rogue.nc.subscribe(subject, queue=subjects.QUEUE_INGRESS)
            await rogue.refused(f'subscription to "{subject}"')
        # Its own rpc subject in its own queue group is allowed: it still sees only node-0's.
        own = subjects.rpc(DON, ROGUE)

        async def keep(msg: Msg) -> None:
            got.append(msg)

        await rogue.nc.subscribe(own, queue=subjects.QUEUE_INGRESS, cb=keep)
        await rogue.nc.flush()
        # A node response forged for node-1, straight onto the gateway's responses subject.
        forged = subjects.gateway_reply(DON, "any", VICTIM, 1)
        await rogue.nc.publish(forged, b'{"jsonrpc":"2.0","id":"x","result":{}}')
        await rogue.refused(f'publish to "{forged}"')
        # Requests into node-1's stages, which its real actors serve.
        victim_verify = subjects.verify(DON, VICTIM)
        with pytest.raises(nats.errors.TimeoutError):
            await rogue.nc.request(victim_verify, b"{}", timeout=0.5)
        await rogue.refused(f'publish to "{victim_verify}"')
        answers = await asyncio.gather(
            *(
                don.gateway.serve(untrusted_secret_request(don.chain, f"rogue-ingress-{i}"))
                for i in range(8)
            )
        )
    assert [json.loads(a.body)["error"] for a in answers] == [INTERNAL] * len(answers)
    assert {m.subject for m in got} <= {own}


@pytest.mark.parametrize("actor", ["dispatch-secrets", "dispatch-capability"])
async def test_a_rogue_dispatcher_with_operator_0s_credentials_cannot_serve_another_node_or_a_dont(
    server: NatsServer, don: Don, actor: str
) -> None:
    """Node-1's dispatch subjects, the vault's and echo's cap.v1 services: refused to subscribe."""
    async with operator0(server, actor) as rogue:
        targets = [
            (subjects.dispatch(DON, VICTIM, m), subjects.dispatch_queue(m)) for m in rpc.METHODS
        ]
        targets += [
            (subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet), "capability"),
            (subjects.capability("echo@1.0.0", "echo"), "capability"),
        ]
        for subject, queue in targets:
            await rogue.nc.subscribe(subject, queue=queue)
            await rogue.refused(f'subscription to "{subject}"')
        victim_rpc = subjects.rpc(DON, VICTIM)
        await rogue.nc.publish(victim_rpc, b"{}")
        await rogue.refused(f'publish to "{victim_rpc}"')


async def test_operator_0_reads_none_of_another_nodes_traffic_or_reply_inboxes(
    server: NatsServer, don: Don
) -> None:
    """Its ops user tails all it may while node-1 serves requests: nothing of node-1 arrives."""
    tailed: list[Msg] = []
    async with operator0(server, "ops") as ops:
        for subject in ("relay.>", "cap.>", f"{subjects.inbox_prefix('ops')}.>"):
            await _tail(ops.nc, subject, tailed)
        # Everything else (another actor's inbox, the service-import reply subjects, `>`) is refused.
        for subject in (f"{subjects.inbox_prefix('ingress')}.>", "_R_.>", ">"):
            await ops.nc.subscribe(subject)
            await ops.refused(f'subscription to "{subject}"')
        await ops.nc.flush()
        tailed.clear()
        await don.gateway.serve(untrusted_secret_request(don.chain, "tailed-1"))
        await asyncio.sleep(0.2)
    victim_prefix = subjects.node_prefix(DON, VICTIM)
    assert tailed, "operator 0's own traffic should be visible to its ops"
    assert [m.subject for m in tailed if m.subject.startswith(victim_prefix)] == []
    assert [m.subject for m in tailed if "node-1" in m.subject] == []
