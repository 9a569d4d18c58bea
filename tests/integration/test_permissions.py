"""The repo's nats.conf on a real nats-server: each actor's user reaches its own subjects only.

The layout is one account per party (tests/integration/test_operator_isolation.py attacks it
with one operator's credentials); this module checks each user's grants inside its account.

Every denial is observed the way an actor would meet it: the server reports a permissions
violation to the client's `error_cb` (the connection stays up), and a denied request ends in a
timeout rather than an answer, even with a legitimate responder listening.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import bus, rpc, subjects
from schemas.proto.gen import sdk_pb2
from tests.conftest import REPO_ROOT
from workers.attestation.testchain import TestChain
from workers.dispatch.dedupe_shared import BUCKET, SharedDeduplicator
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.membership import RegistryMembership
from workers.node.process import NODE_ACTORS, REFERENCE_ACTORS, NodeProcess
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime import credentials
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

NATS_CONF = REPO_ROOT / "nats.conf"
DON, NODE = "relay-don", "node-0"
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
WAIT_S = 3  # seconds: the bound on every wait for something that should happen
DENIED_REQUEST_TIMEOUT_S = 0.5

RPC = subjects.rpc(DON, NODE)
VERIFY = subjects.verify(DON, NODE)
REGISTRY_MEASUREMENTS = subjects.registry(DON, NODE, "measurements")
DISPATCH_SECRETS = subjects.dispatch(DON, NODE, rpc.MethodSecretsGet)
DISPATCH_CAPABILITY = subjects.dispatch(DON, NODE, rpc.MethodCapabilityExec)
VAULT = subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet)

# The users whose registry access is a read-only KV watch (RELAY_REGISTRY_LOOKUPS=local, membership).
KV_READERS = ("registry", "ingress", "dispatch-secrets", "dispatch-capability", "gateway")
NODES = ("node-0", "node-1", "node-2", "node-3")
NODE_USERS = (
    "ingress",
    "verifier",
    "registry",
    "registry-admin",
    "dispatch-secrets",
    "dispatch-capability",
    "ops",
)
GATEWAY_USERS = ("gateway", "enclave", "registry-admin", "ops")


@pytest.fixture(scope="module")
def secured_server() -> Iterator[NatsServer]:
    """A JetStream nats-server configured with the repo's nats.conf, shared by this module."""
    server = NatsServer(config_file=NATS_CONF, jetstream=True)
    server.start_sync()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="module")
def seed(chain: TestChain) -> dict[str, bytes]:
    """The example registry with the test chain's PCRs and a one-node relay DON (F=0)."""
    return seed_entries_for(
        seed_with_measurements([chain.trusted_values_json()], members=(NODE,), f=0)
    )


@pytest.fixture
async def seeded(secured_server: NatsServer, seed: dict[str, bytes]) -> None:
    """node-0's and the gateway's registry buckets hold the seed, each written by that account's
    registry-admin (idempotent)."""
    for party in (NODE, "gateway"):
        user, password = credentials.credentials_for("registry-admin", party)
        admin = await connect(
            secured_server.url, actor="registry-admin", user=user, password=password
        )
        try:
            await asyncio.wait_for(load_entries(admin, seed), WAIT_S)
        finally:
            await admin.close()


@dataclass
class Actor:
    """One actor's connection with what the server reported to its error_cb."""

    name: str
    nc: Client
    errors: list[str] = field(default_factory=list)

    async def violation(self, fragment: str) -> str:
        """The permissions violation naming `fragment`, waiting for it at most WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for error in self.errors:
                if "permissions violation" in error and fragment.lower() in error.lower():
                    return error
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{self.name}: no permissions violation for {fragment!r}: {self.errors}"
        )

    async def assert_quiet(self) -> None:
        """Nothing was refused: a round trip to the server, then no error reported."""
        await self.nc.flush(timeout=WAIT_S)
        await asyncio.sleep(0.05)
        assert self.errors == [], f"{self.name}: {self.errors}"


@asynccontextmanager
async def as_actor(server: NatsServer, name: str, party: str | None = None) -> AsyncIterator[Actor]:
    """Connect as `name` of `party` (node-0 by default) with its nats.conf user and reply inbox,
    capturing its errors."""
    user, password = credentials.credentials_for(name, party)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await asyncio.wait_for(
        nats.connect(
            server.url,
            name=f"relay-{name}",
            user=user,
            password=password,
            inbox_prefix=subjects.inbox_prefix(name),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=WAIT_S,
        ),
        WAIT_S,
    )
    try:
        yield Actor(name=name, nc=nc, errors=errors)
    finally:
        await nc.close()


@asynccontextmanager
async def responder(
    server: NatsServer, name: str, subject: str, queue: str
) -> AsyncIterator[list[bytes]]:
    """`name` answers `pong` on `subject` in its queue group, as its actor would."""
    received: list[bytes] = []

    async def answer(msg: Msg) -> None:
        received.append(msg.data)
        await msg.respond(b"pong")

    async with as_actor(server, name) as actor:
        await actor.nc.subscribe(subject, queue=queue, cb=answer)
        await actor.assert_quiet()
        yield received


# --- the file itself --------------------------------------------------------------------------


def test_nats_conf_has_one_user_per_party_and_actor_with_the_password_credentials_computes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every user of every party's account is in nats.conf with the password it connects with."""
    for actor in credentials.ACTORS:
        env = actor.upper().replace("-", "_")
        monkeypatch.delenv(f"RELAY_NATS_USER_{env}", raising=False)
        monkeypatch.delenv(f"RELAY_NATS_PASSWORD_{env}", raising=False)
    monkeypatch.delenv("RELAY_NATS_NO_AUTH", raising=False)
    text = NATS_CONF.read_text()
    users = dict(re.findall(r'user:\s*"(\S+)"\s+password:\s*"(\S+)"', text))
    expected = dict(
        [credentials.credentials_for(actor, node) for node in NODES for actor in NODE_USERS]
        + [credentials.credentials_for(actor, "gateway") for actor in GATEWAY_USERS]
        + [
            credentials.credentials_for(actor, cap)
            for cap in ("vault", "echo")
            for actor in (cap, "ops")
        ]
    )
    assert users == expected


def test_nats_conf_names_the_subjects_and_queue_groups_schemas_defines() -> None:
    """The encoded method, capability and queue tokens in nats.conf are those of schemas.subjects."""
    text = NATS_CONF.read_text()
    for node in NODES:
        for method in rpc.METHODS:
            served = subjects.dispatch(DON, node, method)
            assert f'"{served} {subjects.dispatch_queue(method)}"' in text
        assert f'"{subjects.rpc(DON, node)} {subjects.QUEUE_INGRESS}"' in text
        assert f'"{subjects.verify(DON, node)} {subjects.QUEUE_VERIFIER}"' in text
        registry = subjects.node_prefix(DON, node) + ".registry.*"
        assert f'"{registry} {subjects.QUEUE_REGISTRY}"' in text
    assert f'"{VAULT} {subjects.QUEUE_CAPABILITY}"' in text
    assert f'"{subjects.gateway(DON)} {subjects.QUEUE_GATEWAY}"' in text
    assert f"KV_{subjects.REGISTRY_BUCKET}" in text
    assert f"KV_{BUCKET}" in text


# --- (a) the gateway reaches the nodes' rpc subjects only ---------------------------------------

STAGES = [
    pytest.param(VERIFY, "verifier", subjects.QUEUE_VERIFIER, "ingress", id="verify"),
    pytest.param(
        REGISTRY_MEASUREMENTS, "registry", subjects.QUEUE_REGISTRY, "ingress", id="registry"
    ),
    pytest.param(
        DISPATCH_SECRETS,
        "dispatch-secrets",
        subjects.dispatch_queue(rpc.MethodSecretsGet),
        "ingress",
        id="dispatch",
    ),
    pytest.param(VAULT, "vault", subjects.QUEUE_CAPABILITY, "dispatch-secrets", id="capability"),
]


@pytest.mark.parametrize(("subject", "owner", "queue", "caller"), STAGES)
async def test_a_gateway_request_to_a_node_stage_times_out_while_its_real_caller_is_answered(
    secured_server: NatsServer, subject: str, owner: str, queue: str, caller: str
) -> None:
    """With the stage's responder listening, its real caller gets `pong` and the gateway only a violation."""
    async with (
        responder(secured_server, owner, subject, queue) as received,
        as_actor(secured_server, caller) as legit,
        as_actor(secured_server, "gateway") as gateway,
    ):
        answer = await legit.nc.request(subject, b"from the caller", timeout=WAIT_S)
        assert answer.data == b"pong"
        with pytest.raises(nats.errors.TimeoutError):
            await gateway.nc.request(subject, b"from the gateway", timeout=DENIED_REQUEST_TIMEOUT_S)
        await gateway.violation(f'publish to "{subject}"')
        assert received == [b"from the caller"]
        await legit.assert_quiet()


async def test_the_gateway_cannot_subscribe_to_everything_under_relay(
    secured_server: NatsServer,
) -> None:
    """`relay.>` is refused to the gateway; it only listens to its own responses subject."""
    async with as_actor(secured_server, "gateway") as gateway:
        await gateway.nc.subscribe("relay.>")
        await gateway.violation('subscription to "relay.>"')


# --- (b) subscriptions outside an actor's grants ------------------------------------------------

ROGUE_SUBSCRIPTIONS = [
    pytest.param("verifier", VERIFY, "", id="verifier-without-queue"),
    pytest.param("verifier", VERIFY, "rogue", id="verifier-wrong-queue"),
    pytest.param(
        "dispatch-secrets",
        DISPATCH_CAPABILITY,
        subjects.dispatch_queue(rpc.MethodCapabilityExec),
        id="dispatch-secrets-on-capability-dispatch",
    ),
    pytest.param(
        "dispatch-secrets",
        DISPATCH_CAPABILITY,
        subjects.dispatch_queue(rpc.MethodSecretsGet),
        id="dispatch-secrets-own-queue-other-method",
    ),
    pytest.param("ingress", VERIFY, subjects.QUEUE_VERIFIER, id="ingress-in-verifier-queue"),
    pytest.param("echo", VAULT, subjects.QUEUE_CAPABILITY, id="echo-on-vault"),
]


@pytest.mark.parametrize(("actor", "subject", "queue"), ROGUE_SUBSCRIPTIONS)
async def test_an_actor_cannot_subscribe_outside_its_subject_and_queue_group(
    secured_server: NatsServer, actor: str, subject: str, queue: str
) -> None:
    """A subscription without the actor's queue group, in another group or on another subject is refused."""
    async with as_actor(secured_server, actor) as conn:
        await conn.nc.subscribe(subject, queue=queue)
        error = await conn.violation(f'subscription to "{subject}"')
        if queue:
            assert f'using queue "{queue}"'.lower() in error.lower()


async def test_the_verifier_may_subscribe_to_its_subject_in_its_own_queue_group(
    secured_server: NatsServer,
) -> None:
    """The control for the rows above: the very subscription the verifier makes is accepted."""
    async with as_actor(secured_server, "verifier") as verifier:
        await verifier.nc.subscribe(VERIFY, queue=subjects.QUEUE_VERIFIER)
        await verifier.assert_quiet()


@pytest.mark.parametrize(
    ("actor", "other"),
    [
        (a, credentials.ACTORS[(i + 1) % len(credentials.ACTORS)])
        for i, a in enumerate(credentials.ACTORS)
    ],
)
async def test_an_actor_cannot_subscribe_to_another_actors_reply_inbox(
    secured_server: NatsServer, actor: str, other: str
) -> None:
    """Each user is refused the next actor's `_INBOX_<actor>.>`, so no one reads another's replies."""
    inbox = subjects.inbox_prefix(other) + ".>"
    async with as_actor(secured_server, actor) as conn:
        await conn.nc.subscribe(inbox)
        await conn.violation(f'subscription to "{inbox}"')


async def test_a_responder_may_publish_one_reply_to_a_request_and_nothing_into_inboxes(
    secured_server: NatsServer,
) -> None:
    """allow_responses lets the verifier answer once; a second reply or a publish to an inbox is refused."""
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_reply(msg: Msg) -> None:
        await replies.put(msg.data)

    async with (
        as_actor(secured_server, "verifier") as verifier,
        as_actor(secured_server, "ingress") as ingress,
    ):

        async def answer_twice(msg: Msg) -> None:
            await verifier.nc.publish(msg.reply, b"one")
            await verifier.nc.publish(msg.reply, b"two")

        await verifier.nc.subscribe(VERIFY, queue=subjects.QUEUE_VERIFIER, cb=answer_twice)
        await verifier.assert_quiet()
        inbox = ingress.nc.new_inbox()
        await ingress.nc.subscribe(inbox, cb=on_reply)
        await ingress.nc.publish(VERIFY, b"verify this", reply=inbox)
        assert await asyncio.wait_for(replies.get(), WAIT_S) == b"one"
        await verifier.violation(f'publish to "{inbox}"')
        await verifier.nc.publish(inbox, b"unasked")
        await asyncio.sleep(0.1)
        assert replies.empty()
        await ingress.assert_quiet()


# --- (c) ops is read-only -----------------------------------------------------------------------


async def test_ops_cannot_publish_into_an_rpc_subject(secured_server: NatsServer) -> None:
    """An ops publish (or request) on a node's rpc subject never reaches the ingress listening there."""
    async with (
        responder(secured_server, "ingress", RPC, subjects.QUEUE_INGRESS) as received,
        as_actor(secured_server, "ops") as ops,
    ):
        await ops.nc.publish(RPC, b"from ops")
        await ops.violation(f'publish to "{RPC}"')
        with pytest.raises(nats.errors.TimeoutError):
            await ops.nc.request(RPC, b"from ops", timeout=DENIED_REQUEST_TIMEOUT_S)
        await ops.nc.publish(VAULT, b"from ops")
        await ops.violation(f'publish to "{VAULT}"')
        assert received == []


async def test_ops_can_tail_relay_subjects_but_cannot_join_a_queue_group(
    secured_server: NatsServer,
) -> None:
    """ops sees a gateway publish on an rpc subject through `relay.>`; joining `ingress` is refused."""
    tailed: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        await tailed.put(msg)

    async with (
        as_actor(secured_server, "ops") as ops,
        as_actor(secured_server, "gateway") as gateway,
    ):
        await ops.nc.subscribe("relay.>", cb=on_msg)
        await ops.assert_quiet()
        await gateway.nc.publish(RPC, b"tailed")
        msg = await asyncio.wait_for(tailed.get(), WAIT_S)
        assert (msg.subject, msg.data) == (RPC, b"tailed")
        await gateway.assert_quiet()
        await ops.nc.subscribe(RPC, queue=subjects.QUEUE_INGRESS)
        await ops.violation(f'subscription to "{RPC}" using queue "{subjects.QUEUE_INGRESS}"')


# --- (d) the registry bucket: read-only watchers, one writer ------------------------------------


async def _watch_all(nc: Client) -> dict[str, bytes]:
    """The bucket's keys and values through a KV watch, as RegistryCache reads it: up to the
    stream's last sequence, since nats-py may send its end-of-initial-values marker first."""
    kv = await nc.jetstream(timeout=WAIT_S).key_value(subjects.REGISTRY_BUCKET)
    last: int = (await kv.status()).stream_info.state.last_seq
    watcher = await kv.watchall()
    entries: dict[str, bytes] = {}
    seen = 0
    try:
        while seen < last:
            entry = await watcher.updates(timeout=WAIT_S)  # type: ignore[no-untyped-call]
            if entry is not None:
                entries[entry.key] = entry.value or b""
                seen = max(seen, entry.revision or 0)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return entries


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("reader", KV_READERS)
async def test_a_read_only_user_can_watch_the_registry_bucket_but_cannot_put_into_it(
    secured_server: NatsServer, seed: dict[str, bytes], reader: str
) -> None:
    """The watch loads the whole seed; a put times out with a violation and changes nothing."""
    async with as_actor(secured_server, reader) as conn:
        assert await _watch_all(conn.nc) == seed
        await conn.assert_quiet()
        kv = await conn.nc.jetstream(timeout=DENIED_REQUEST_TIMEOUT_S).key_value(
            subjects.REGISTRY_BUCKET
        )
        with pytest.raises(nats.errors.TimeoutError):
            await kv.put("dons.1", b"{}")
        await conn.violation(f'publish to "$KV.{subjects.REGISTRY_BUCKET}.dons.1"')
        assert await _watch_all(conn.nc) == seed


@pytest.mark.usefixtures("seeded")
async def test_registry_admin_can_put_into_the_registry_bucket_and_readers_see_it(
    secured_server: NatsServer,
) -> None:
    """registry-admin writes a key (outside the registry layout, so the view ignores it)."""
    async with (
        as_actor(secured_server, "registry-admin") as admin,
        as_actor(secured_server, "ingress") as reader,
    ):
        kv = await admin.nc.jetstream(timeout=WAIT_S).key_value(subjects.REGISTRY_BUCKET)
        value = f"written at {time.time()}".encode()
        assert await kv.put("test.permissions", value) > 0
        await admin.assert_quiet()
        assert (await _watch_all(reader.nc))["test.permissions"] == value


async def test_a_read_only_user_cannot_create_a_bucket(secured_server: NatsServer) -> None:
    """Creating streams is registry-admin's alone, and only for the registry's own bucket."""
    async with as_actor(secured_server, "registry") as conn:
        js = conn.nc.jetstream(timeout=DENIED_REQUEST_TIMEOUT_S)
        with pytest.raises(nats.errors.TimeoutError):
            await js.create_key_value(bucket="relay_rogue")
        await conn.violation('publish to "$JS.API.STREAM.CREATE.KV_relay_rogue"')


async def test_the_capability_dispatcher_alone_may_use_the_dedupe_bucket(
    secured_server: NatsServer,
) -> None:
    """RELAY_DEDUPE=shared works under its grants; another actor cannot forge an outcome."""
    async with (
        as_actor(secured_server, "dispatch-capability") as dispatcher,
        as_actor(secured_server, "dispatch-secrets") as other,
    ):
        store = await SharedDeduplicator.open(dispatcher.nc, "node-0")
        ran = bus.DispatchResult(result=msgspec.Raw(b"{}"))

        async def work() -> bus.DispatchReply:
            return ran

        key = f"permissions-{time.monotonic_ns()}"
        assert await store.run(key, work) == ran
        await dispatcher.assert_quiet()
        await other.nc.publish(f"$KV.{BUCKET}.{store.kv_key(key)}", b"forged")
        await other.violation(f'publish to "$KV.{BUCKET}.')
        kv = await dispatcher.nc.jetstream(timeout=WAIT_S).key_value(BUCKET)
        assert (await kv.get(store.kv_key(key))).value == bus.ENCODER.encode(ran)


# --- (e) a whole node, each actor as its own user, driven by the gateway user --------------------


@pytest.fixture(params=["local", "actor"])
async def node(
    request: pytest.FixtureRequest,
    secured_server: NatsServer,
    chain: TestChain,
    seeded: None,
    tmp_path: Path,
) -> AsyncIterator[NodeProcess]:
    """Every node actor plus the reference vault and echo, each connected as its own user.

    Both registry lookup modes: each actor's own KV watch (local), or requests to the registry
    actor (actor).
    """
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    proc = NodeProcess(
        NodeSettings(
            don=DON,
            node=NODE,
            nats_url=secured_server.url,
            dev_root_pem=root,
            request_timeout_s=5.0,
            registry_lookups=request.param,
        ),
        actors=(*REFERENCE_ACTORS, *NODE_ACTORS),  # ingress (last of NODE_ACTORS) starts last
    )
    await asyncio.wait_for(proc.start(), 15)
    try:
        yield proc
    finally:
        await proc.stop()


@asynccontextmanager
async def gateway_actor(server: NatsServer) -> AsyncIterator[GatewayActor]:
    """The real gateway as user `gateway`, its DON membership read from the registry bucket."""
    user, password = credentials.credentials_for("gateway")
    nc = await connect(server.url, actor="gateway", user=user, password=password)
    membership = RegistryMembership(DON)
    gateway: GatewayActor | None = None
    try:
        await membership.start(nc, wait_s=WAIT_S)
        gateway = GatewayActor(
            nc, GatewaySettings(don=DON, handler=HandlerConfig(request_timeout_s=5.0)), membership
        )
        await gateway.start()
        yield gateway
    finally:
        if gateway is not None:
            await gateway.stop()
        await membership.stop()
        if not nc.is_closed:
            await nc.close()


def attested(chain: TestChain, method: str, params: dict[str, Any], request_id: str) -> bytes:
    bound = binding.bind(method, json.dumps(params).encode())
    document = chain.document(user_data=bound.user_data)
    sent = {**params, "attestation": base64.b64encode(document).decode()}
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": sent}
    ).encode()


def echo_params(text: str) -> dict[str, Any]:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value=text))
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=inner)
    return {
        "workflow_id": "wf-permissions",
        "owner": OWNER,
        "execution_id": "00" * 32,
        "reference_id": "permissions-1",
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload.SerializeToString()).decode(),
    }


def _violations(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the actors' error_cb logged (workers/runtime/bus.py), from their start on."""
    records = caplog.get_records("setup") + caplog.get_records("call")
    return [r.getMessage() for r in records if "permissions violation" in r.getMessage()]


async def test_a_whole_node_of_per_actor_users_answers_the_gateway_users_attested_requests(
    secured_server: NatsServer,
    node: NodeProcess,
    chain: TestChain,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """secrets.get decrypts with the enclave's key and capability.execute echoes, with no violation anywhere."""
    enclave = X25519PrivateKey.generate()
    secrets_params = {
        "workflow_id": "wf-permissions",
        "owner": OWNER,
        "execution_id": "00" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": enclave_crypto.public_hex(enclave),
    }
    async with gateway_actor(secured_server) as gateway:
        reply = await asyncio.wait_for(
            gateway.serve(attested(chain, rpc.MethodSecretsGet, secrets_params, "perm-secrets")),
            10,
        )
        assert reply.status == 200, reply.body
        (secret,) = json.loads(reply.body)["result"]["secrets"]
        shares = [base64.b64decode(s) for s in secret["encrypted_shares"]]
        plain = enclave_crypto.decrypt_secret(
            base64.b64decode(secret["ciphertext"]),
            shares,
            enclave,
            name=b"main/API_KEY",
            reference=b"perm-secrets",
        )
        assert plain == b"s3cr3t-api-key-for-the-demo"

        reply = await asyncio.wait_for(
            gateway.serve(
                attested(chain, rpc.MethodCapabilityExec, echo_params("hi"), "perm-echo")
            ),
            10,
        )
        assert reply.status == 200, reply.body
        result = sdk_pb2.CapabilityResponse.FromString(
            base64.b64decode(json.loads(reply.body)["result"]["payload"])
        )
        echoed = wrappers_pb2.StringValue()
        assert result.payload.Unpack(echoed)
        assert echoed.value == "hi"
    assert _violations(caplog) == []


async def _discover(server: NatsServer, party: str) -> set[str]:
    """The service names answering `$SRV.PING` to `party`'s ops user within WAIT_S."""
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_answer(msg: Msg) -> None:
        await answers.put(msg)

    names: set[str] = set()
    async with as_actor(server, "ops", party) as ops:
        inbox = ops.nc.new_inbox()
        await ops.nc.subscribe(inbox, cb=on_answer)
        await ops.nc.publish("$SRV.PING", b"", reply=inbox)
        deadline = time.monotonic() + WAIT_S
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(answers.get(), min(remaining, 0.5))
            except TimeoutError:
                break
            names.add(json.loads(msg.data)["name"])
        await ops.assert_quiet()
    return names


async def test_each_ops_user_discovers_exactly_its_own_accounts_services_through_srv_ping(
    secured_server: NatsServer, node: NodeProcess
) -> None:
    """node-0's ops sees node-0's five actors and not the vault or echo; their ops see them alone."""
    assert await _discover(secured_server, NODE) == {
        "relay-registry",
        "relay-verifier",
        "relay-dispatch-secrets",
        "relay-dispatch-capability",
        "relay-ingress",
    }
    assert await _discover(secured_server, "vault") == {"relay-ref-vault"}
    assert await _discover(secured_server, "echo") == {"relay-ref-echo"}
    async with as_actor(secured_server, "ops") as ops:
        info = await ops.nc.request("$SRV.INFO.relay-verifier", b"", timeout=WAIT_S)
        assert json.loads(info.data)["endpoints"][0]["subject"] == VERIFY
        await ops.assert_quiet()


# --- the operator CLI under nats.conf -----------------------------------------------------------


def test_relay_registry_load_and_show_connect_as_registry_admin_by_default(
    secured_server: NatsServer, chain: TestChain, tmp_path: Path
) -> None:
    """Without --user the CLI uses registry-admin's credentials, so it can write and read the bucket."""
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(
        json.dumps(seed_with_measurements([chain.trusted_values_json()], members=(NODE,), f=0))
    )
    relay = Path(sys.executable).parent / "relay"
    for args in (["load", str(seed_file)], ["show"]):
        done = subprocess.run(
            [str(relay), "registry", *args, "--nats", secured_server.url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert "DON 1 'relay-don': F=0" in done.stdout


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["registry", "show", "--user", "registry-admin", "--password", "wrong"], {}),
        (["tail", "--count", "1", "--timeout", "2"], {"RELAY_NATS_PASSWORD_OPS": "wrong"}),
    ],
    ids=["registry", "tail"],
)
def test_a_refused_password_is_named_not_mistaken_for_silence(
    secured_server: NatsServer, argv: list[str], env: dict[str, str]
) -> None:
    """The CLI says the server refused the credentials, not that no server answered."""
    relay = Path(sys.executable).parent / "relay"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [str(relay), *argv, "--nats", secured_server.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**base_env, **env},
    )
    assert done.returncode == 1, done.stderr
    assert "refused the connection" in done.stderr
    assert "authorization violation" in done.stderr.lower()


# --- (f) RELAY_PROTOCOL=current under the same grants -------------------------------------------


@pytest.mark.parametrize("lookups", ["local", "actor"])
async def test_a_node_under_the_current_protocol_signs_and_shares_its_memo_under_its_grants(
    secured_server: NatsServer,
    chain: TestChain,
    seeded: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    lookups: str,
) -> None:
    """The trust lookup, the relay_memo bucket and signing work as per-actor users; only the
    ingress may write signed results into the memo bucket."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from workers.ingress.current import memo_key
    from workers.ingress.memo_shared import BUCKET as MEMO_BUCKET
    from workers.ingress.memo_shared import SharedResponseMemo
    from workers.protocol import signed
    from workers.runtime import nodekey

    key_file = tmp_path / "node.key"
    key = nodekey.write_new(key_file)
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    current_seed = seed_with_measurements(
        [chain.trusted_values_json()], members=(NODE,), f=0, peer_ids=[key.public_key]
    )
    user, password = credentials.credentials_for("registry-admin")
    admin = await connect(secured_server.url, actor="registry-admin", user=user, password=password)
    proc = NodeProcess(
        NodeSettings(
            don=DON,
            node=NODE,
            nats_url=secured_server.url,
            dev_root_pem=root,
            request_timeout_s=5.0,
            registry_lookups=lookups,
            protocol="current",
            node_key=key_file,
            dedupe="shared",
        ),
        actors=(*REFERENCE_ACTORS, *NODE_ACTORS),
    )
    try:
        await asyncio.wait_for(load_entries(admin, seed_entries_for(current_seed)), WAIT_S)
        await asyncio.wait_for(proc.start(), 15)
        params = {
            **echo_params("signed hi"),
            "execution_id": f"current-{lookups}-{time.monotonic_ns()}",
            "enclave_config": {
                "signers": [base64.b64encode(key.public_key).decode()],
                "master_public_key": base64.b64encode(b"mpk").decode(),
                "t": 1,
                "f": 1,
            },
        }
        bound = binding.bind_current(rpc.MethodCapabilityExec, json.dumps(params).encode())
        document = chain.document(user_data=bound.user_data)
        raw = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "perm-current",
                "method": rpc.MethodCapabilityExec,
                "params": {**params, "attestation": base64.b64encode(document).decode()},
            }
        ).encode()
        async with (
            as_actor(secured_server, "gateway") as gateway,
            as_actor(secured_server, "dispatch-secrets") as other,
        ):
            reply = await gateway.nc.request(RPC, raw, timeout=10)
            body = json.loads(reply.data)["result"]
            signature = base64.b64decode(body["signature"]["signature"])
            response_hash = signed.capability_response_hash(
                bound.params,  # type: ignore[arg-type]
                rpc.CapabilityResponseResult(**body["result"]),
            )
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(
                signature, signed.relay_payload(response_hash)
            )
            await other.nc.publish(f"$KV.{MEMO_BUCKET}.x", b"forged")
            await other.violation(f'publish to "$KV.{MEMO_BUCKET}.')
        async with as_actor(secured_server, "ingress") as ingress:
            kv = await ingress.nc.jetstream(timeout=WAIT_S).key_value(MEMO_BUCKET)
            stored = SharedResponseMemo(kv, NODE).kv_key(memo_key(bound.params))  # type: ignore[arg-type]
            assert (await kv.get(stored)).value == json.dumps(body, separators=(",", ":")).encode()
    finally:
        await proc.stop()
        await asyncio.wait_for(
            load_entries(
                admin,
                seed_entries_for(
                    seed_with_measurements([chain.trusted_values_json()], members=(NODE,), f=0)
                ),
            ),
            WAIT_S,
        )
        await admin.close()
    assert [v for v in _violations(caplog) if "relay_memo.x" not in v] == []
