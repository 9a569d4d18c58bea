"""`relay demo --cluster`: the relay DON as independent operators run it, on a 3-server cluster.

Three nats-servers on loopback from the configs `relay nats-config` writes (accounts: one per
node operator, the gateway's, the vault's, echo's), each operator's registry bucket and the
gateway's at R3; four nodes, the gateway, vault and echo, each as its own users. Then, under a
bounded load of attested secret requests: kill -9 the server leading node-1's registry stream,
restart node-1's ingress while that server is down (it must load the registry from the
surviving replicas), restart the server; finally a rogue verifier holding operator 0's
credentials answers `Verified` to everything while an untrusted enclave image asks for a secret.
True only when every valid request got its correct answer (at least 99.5 % while the server was
down, none lost), the restarted ingress served, and the untrusted image got no secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import bus, rpc, subjects
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.deploy import natsconf, topology
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.membership import RegistryMembership
from workers.gateway.ratelimit import RateLimit
from workers.node.demo import OWNER, ErrorLog
from workers.node.process import NODE_ACTORS, REPO_ROOT, NodeProcess, RunningActor, start_actor
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer, free_port
from workers.runtime.settings import NodeSettings

DON = "relay-don"
NODES = ("node-0", "node-1", "node-2", "node-3")
ROGUE, RESTARTED = "node-0", "node-1"
SECRET = b"s3cr3t-api-key-for-the-demo"
# Every actor of the four nodes shares this one process (one core): 20 req/s is 80 verifications
# and 80 vault calls a second, which a loaded 2-core machine still serves in time.
RATE_PER_S = 20.0
WARMUP_S = 2.0
AFTER_S = 2.0
OUTAGE_MAX_S = 20.0
MIN_OUTAGE_S = 12.0  # past a stream leader election (5-10 s measured), about 240 requests
MIN_SERVED = 3
UNTRUSTED_REQUESTS = 20
MIN_DURING_KILL = 0.995

Say = Callable[[str], None]


@dataclass
class Outcome:
    """One valid request: sent when, answered how."""

    sent_at: float
    answered_at: float = 0.0
    correct: bool = False
    lost: bool = False
    detail: str = ""


@dataclass
class Load:
    """A bounded stream of attested secret requests through the gateway, each answer checked."""

    gateway: GatewayActor
    chain: TestChain
    outcomes: list[Outcome] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _n: int = 0

    @property
    def sent(self) -> int:
        return self._n

    def request(self, pcrs: dict[int, bytes] | None = None) -> tuple[str, bytes, X25519PrivateKey]:
        self._n += 1
        request_id = f"cluster-{self._n}"
        key = X25519PrivateKey.generate()
        params = {
            "workflow_id": "wf-cluster-demo",
            "owner": OWNER,
            "execution_id": "00" * 31 + "02",
            "secrets": [{"key": "API_KEY", "namespace": "main"}],
            "enclave_public_key": enclave_crypto.public_hex(key),
        }
        bound = binding.bind(rpc.MethodSecretsGet, json.dumps(params).encode())
        document = self.chain.document(user_data=bound.user_data, pcrs=pcrs)
        sent = {**params, "attestation": base64.b64encode(document).decode()}
        body = {"jsonrpc": "2.0", "id": request_id, "method": rpc.MethodSecretsGet, "params": sent}
        return request_id, json.dumps(body).encode(), key

    async def one(self) -> None:
        request_id, body, key = self.request()
        outcome = Outcome(sent_at=time.monotonic())
        self.outcomes.append(outcome)
        try:
            reply = await asyncio.wait_for(self.gateway.serve(body), 15)
        except Exception as exc:
            outcome.lost, outcome.detail = True, type(exc).__name__
            return
        finally:
            outcome.answered_at = time.monotonic()
        outcome.correct = opened(reply.body, key, request_id) == SECRET
        outcome.detail = "" if outcome.correct else reply.body.decode(errors="replace")[:200]

    async def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Send at RATE_PER_S for `seconds` (or until `until()`), not waiting for answers."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until is not None and until()):
            task = asyncio.create_task(self.one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(1 / RATE_PER_S)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=20)


def opened(body: bytes, key: X25519PrivateKey, request_id: str) -> bytes | None:
    """The secret the enclave's key opens from a response, or None (an error, or no secret)."""
    try:
        (secret,) = json.loads(body)["result"]["secrets"]
        return enclave_crypto.decrypt_secret(
            base64.b64decode(secret["ciphertext"]),
            [base64.b64decode(s) for s in secret["encrypted_shares"]],
            key,
            name=b"main/API_KEY",
            reference=request_id.encode(),
        )
    except (KeyError, TypeError, ValueError, enclave_crypto.DecryptionError):
        return None


class NodeAnswers:
    """The gateway ops user's view of node responses: which node answered a result, and when."""

    def __init__(self) -> None:
        self.results: list[tuple[float, str, int]] = []

    async def on_msg(self, msg: Msg) -> None:
        if b'"result"' in msg.data:
            node = (msg.headers or {}).get("Relay-Node", "?")
            try:
                number = int(str(json.loads(msg.data)["id"]).rpartition("-")[2])
            except (ValueError, KeyError, TypeError):
                return
            self.results.append((time.monotonic(), node, number))

    def served_after(self, node: str, first_request: int) -> list[float]:
        """When `node` answered a result to requests numbered `first_request` or later."""
        return [at for at, who, n in self.results if who == node and n >= first_request]


def _topology(tmp: Path) -> tuple[topology.Topology, list[dict[str, Any]]]:
    raw = tomllib.loads((REPO_ROOT / "deploy" / "nats" / "dev.toml").read_text())
    servers = [
        {"name": f"nats-{i}", "port": free_port(), "http_port": free_port(),
         "cluster_port": free_port()}
        for i in range(3)
    ]  # fmt: skip
    raw.update(layout="cluster", cluster_name="relay-demo", servers=servers)
    return topology.parse(raw), servers


def _healthy(server: NatsServer) -> bool:
    try:
        url = f"http://127.0.0.1:{server.monitor_port}/healthz"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_healthy(servers: list[NatsServer], timeout_s: float) -> None:
    """Until each server's full /healthz is 200 (JetStream current with its meta leader)."""
    deadline = time.monotonic() + timeout_s
    for server in servers:
        while not _healthy(server):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {server.url} not healthy after {timeout_s}s")
            time.sleep(0.1)


async def _as(url: str, actor: str, party: str | None = None) -> Client:
    user, password = credentials_for(actor, party)
    return await connect(url, actor=actor, user=user, password=password)


async def _stream_leader(url: str, party: str) -> str:
    nc = await _as(url, "registry-admin", party)
    try:
        info = await nc.jetstream(timeout=5).stream_info(f"KV_{subjects.REGISTRY_BUCKET}")
        return info.cluster.leader if info.cluster and info.cluster.leader else ""
    finally:
        await nc.close()


CLEANUP_S = 20.0


async def _bounded(say: Say, what: str, step: Awaitable[Any]) -> bool:
    try:
        await asyncio.wait_for(step, CLEANUP_S)
    except TimeoutError:
        say(f"   CLEANUP: {what} did not finish within {CLEANUP_S:.0f}s")
        return False
    return True


async def _new_leader(urls: str, old: str, since: float) -> str:
    """Until the registry stream of the restarted node has a leader other than `old` (asked
    every 0.2 s with a 1 s bound, so the time it reports is within about a second)."""
    nc = await _as(urls, "registry-admin", RESTARTED)
    try:
        js = nc.jetstream(timeout=1.0)
        while time.monotonic() < since + OUTAGE_MAX_S:
            try:
                info = await js.stream_info(f"KV_{subjects.REGISTRY_BUCKET}")
                leader = info.cluster.leader if info.cluster and info.cluster.leader else ""
            except Exception:  # no leader yet: JetStream answers 503 or not at all
                leader = ""
            if leader and leader != old:
                return leader
            await asyncio.sleep(0.2)
        return ""
    finally:
        await nc.close()


async def run_cluster_demo(say: Say) -> bool:
    started = time.monotonic()
    ok = True
    errors = ErrorLog()
    ingress_log = logging.getLogger("relay.ingress")
    previous = (ingress_log.level, ingress_log.propagate)
    # The nodes' error details are shown in the report, not printed as they come.
    ingress_log.setLevel(logging.ERROR)
    ingress_log.propagate = False
    ingress_log.addHandler(errors)
    with tempfile.TemporaryDirectory(prefix="relay-cluster-demo-") as tmp_dir:
        tmp = Path(tmp_dir)
        topo, specs = _topology(tmp)
        written = natsconf.write(topo, tmp / "nats", dev=True)
        servers = {
            spec["name"]: NatsServer(
                config_file=tmp / "nats" / f"{spec['name']}.conf",
                port=spec["port"],
                monitor_port=spec["http_port"],
                store_dir=tmp / f"{spec['name']}-js",
            )
            for spec in specs
        }
        nodes: list[NodeProcess] = []
        extras: list[RunningActor] = []
        closers: list[Callable[[], Any]] = []
        try:
            for server in servers.values():
                server.spawn()
            for server in servers.values():
                await asyncio.to_thread(server.wait_ready, 30.0)
            await asyncio.to_thread(wait_healthy, list(servers.values()), 30.0)
            urls = ",".join(s.url for s in servers.values())
            say(
                f"1. 3 nats-servers in a cluster ({', '.join(f'{n} pid {s.pid}' for n, s in servers.items())}),"
                f" configs from relay nats-config ({', '.join(p.name for p in written.configs)}), accounts"
                f" {', '.join(n.operator for n in topo.nodes)}, gateway, vault, echo"
            )
            chain = TestChain()
            root = tmp / "root.pem"
            root.write_bytes(chain.root_pem)
            seed = seed_entries_for(
                seed_with_measurements([chain.trusted_values_json()], members=NODES, f=1)
            )
            for party in (*NODES, "gateway"):
                admin = await _as(urls, "registry-admin", party)
                try:
                    await load_entries(admin, seed, replicas=3)
                finally:
                    await admin.close()
            say("2. registry loaded at R3 into each operator's account and the gateway's")
            # Two workers each, on their own connections: a capability DON has several nodes, and
            # one worker's server dying must not take every node's in-flight calls with it.
            for name in ("vault", "vault", "echo", "echo"):
                extras.append(await start_actor(name, NodeSettings(nats_url=urls)))
            for node in NODES:
                proc = NodeProcess(
                    NodeSettings(don=DON, node=node, nats_url=urls, dev_root_pem=root),
                    actors=tuple(NODE_ACTORS),
                )
                await proc.start()
                nodes.append(proc)
            gw_nc = await _as(urls, "gateway")
            closers.append(gw_nc.close)
            membership = RegistryMembership(DON)
            await membership.start(gw_nc)
            closers.insert(0, membership.stop)
            limit = RateLimit(rate=500.0, burst=500)
            gateway = GatewayActor(
                gw_nc,
                GatewaySettings(
                    don=DON,
                    handler=HandlerConfig(
                        request_timeout_s=10, per_node_rate=limit, global_rate=limit
                    ),
                ),
                membership,
            )
            await gateway.start()
            closers.insert(0, gateway.stop)
            ops = await _as(urls, "ops", "gateway")
            closers.append(ops.close)
            answers = NodeAnswers()
            await ops.subscribe(subjects.gateway_responses(DON) + ".>", cb=answers.on_msg)
            say(
                "3. 4 nodes (4 operators), the gateway, vault and echo (two workers each) up, each"
                " as its own users"
            )

            load = Load(gateway=gateway, chain=chain)
            await load.one()  # one request through every path before the clock starts
            load.outcomes.clear()
            stop_load = asyncio.Event()
            sending = asyncio.create_task(load.run_for(120.0, until=stop_load.is_set))
            try:
                await asyncio.sleep(WARMUP_S)
                leader = await _stream_leader(urls, RESTARTED)
                victim = servers[leader]
                victim_pid = victim.pid
                kill_at = time.monotonic()
                victim.kill()
                say(
                    f"4. {RATE_PER_S:.0f} req/s of attested secret requests; kill -9 {leader}"
                    f" (pid {victim_pid}), leader of {RESTARTED}'s registry stream"
                )
                restarted = next(p for p in nodes if p.settings.node == RESTARTED)
                ingress = next(a for a in restarted.running if a.name == "ingress")
                await ingress.service.stop()
                restarted.running.remove(ingress)
                restart_at = time.monotonic()
                restarted.running.append(await start_actor("ingress", restarted.settings))
                # Requests created from now on can only reach the new ingress (the old one left
                # the queue group and answered what it held before it stopped).
                first_new = load.sent + 1
                say(f"5. {RESTARTED}'s ingress restarted while {leader} is down")
                new_leader = await _new_leader(urls, leader, kill_at)
                say(
                    f"   {RESTARTED}'s registry stream elected {new_leader or 'NO'} leader"
                    f" {time.monotonic() - kill_at:.1f}s after the kill"
                )
                deadline = time.monotonic() + OUTAGE_MAX_S
                # A bounded poll of counters the ops subscription feeds; no event to wait on.
                while (  # noqa: ASYNC110
                    len(answers.served_after(RESTARTED, first_new)) < MIN_SERVED
                    or time.monotonic() < kill_at + MIN_OUTAGE_S
                ) and time.monotonic() < deadline:
                    # A bounded poll of counters the ops subscription feeds; no event to wait on.
                    await asyncio.sleep(0.1)
                new_answers = answers.served_after(RESTARTED, first_new)
                served, first = len(new_answers), min(new_answers, default=None)
                say(
                    f"   the new {RESTARTED} ingress served {served} secret(s) while {leader} was"
                    " down, from the replicated registry"
                    + (f", the first {first - restart_at:.1f}s after its start" if first else "")
                )
                ok &= served >= MIN_SERVED and bool(new_leader)
                victim.spawn()
                await asyncio.to_thread(victim.wait_ready, 30.0)
                await asyncio.to_thread(wait_healthy, list(servers.values()), 30.0)
                back_at = time.monotonic()
                say(f"6. {leader} restarted and healthy {back_at - kill_at:.1f}s after the kill")
                await asyncio.sleep(AFTER_S)
            finally:
                stop_load.set()
                await sending
                await load.drain()
            ok &= _report_load(say, load, kill_at, back_at)

            ok &= await _rogue(say, urls, load)
        finally:
            # Each step bounded: one that hangs is named, and the servers still get stopped.
            for close in closers:
                ok &= await _bounded(say, getattr(close, "__qualname__", "close"), close())
            for proc in nodes:
                ok &= await _bounded(say, f"stopping {proc.settings.node}", proc.stop())
            for actor in extras:
                ok &= await _bounded(say, f"stopping {actor.name}", actor.service.stop())
            for server in servers.values():
                server.cleanup()
            ingress_log.removeHandler(errors)
            ingress_log.setLevel(previous[0])
            ingress_log.propagate = previous[1]
    untrusted = sum(any("PCR0 mismatch" in d for d in ds) for ds in errors.by_id.values())
    others = sorted({d for ds in errors.by_id.values() for d in ds if "PCR0 mismatch" not in d})
    say(
        f"   the nodes' logs: {untrusted} untrusted-image request(s) rejected (PCR0 mismatch)"
        + (f"; other errors: {'; '.join(d[:160] for d in others[:3])}" if others else "")
    )
    say(
        f"done in {time.monotonic() - started:.1f}s: every server and actor started was stopped"
        f" ({'all checks held' if ok else 'SOME CHECK FAILED'})"
    )
    return ok


def _report_load(say: Say, load: Load, kill_at: float, back_at: float) -> bool:
    # During the kill: sent while the server was down, or still in flight when it was killed.
    def hit(o: Outcome) -> bool:
        return o.sent_at < back_at and o.answered_at >= kill_at

    during = [o for o in load.outcomes if hit(o)]
    outside = [o for o in load.outcomes if not hit(o)]
    lost = [o for o in load.outcomes if o.lost]
    right_during = sum(o.correct for o in during)
    share = right_during / len(during) if during else 0.0
    say(
        f"7. {len(load.outcomes)} valid requests: {sum(o.correct for o in outside)}/{len(outside)}"
        f" correct outside the outage, {right_during}/{len(during)} ({share:.1%}) sent while the"
        f" server was down or in flight at the kill, {len(lost)} lost"
    )
    for o in [o for o in load.outcomes if not o.correct][:3]:
        say(f"   not correct (sent {o.sent_at - kill_at:+.1f}s from the kill): {o.detail}")
    return (
        not lost and bool(during) and share >= MIN_DURING_KILL and all(o.correct for o in outside)
    )


async def _rogue(say: Say, urls: str, load: Load) -> bool:
    """Operator 0's verifier credentials, answering Verified, against an untrusted image."""
    user, password = credentials_for("verifier", ROGUE)
    refused: list[str] = []

    async def on_error(exc: Exception) -> None:
        refused.append(str(exc))

    rogue = await nats.connect(
        urls.split(","),
        user=user,
        password=password,
        inbox_prefix=subjects.inbox_prefix("verifier"),
        error_cb=on_error,
        allow_reconnect=False,
    )
    taken: list[str] = []
    try:

        async def lie(msg: Msg) -> None:
            taken.append(msg.subject)
            verdict = bus.Verified(module_id="rogue", timestamp_ms=0, is_debug=False)
            await rogue.publish(msg.reply, bus.ENCODER.encode(verdict))

        # Every node's verify subject, as in the attack: the server refuses it.
        await rogue.subscribe(f"relay.v1.{DON}.*.verify", queue=subjects.QUEUE_VERIFIER)
        await rogue.subscribe(subjects.verify(DON, ROGUE), queue=subjects.QUEUE_VERIFIER, cb=lie)
        await rogue.flush()
        untrusted = fake_pcrs("untrusted-image")

        async def ask() -> bool:
            request_id, body, key = load.request(pcrs=untrusted)
            reply = await load.gateway.serve(body)
            return opened(reply.body, key, request_id) is not None

        leaked = sum(await asyncio.gather(*(ask() for _ in range(UNTRUSTED_REQUESTS))))
    finally:
        await rogue.close()
    wildcard_refused = any("permissions violation" in e for e in refused)
    others = len([t for t in taken if t != subjects.verify(DON, ROGUE)])
    say(
        f"8. rogue verifier with {ROGUE}'s credentials: its subscription to every node's verify"
        f" subject {'refused' if wildcard_refused else 'ACCEPTED'}; it answered Verified to"
        f" {len(taken) - others} of {ROGUE}'s verify requests and {others} of other nodes';"
        f" the untrusted image got {leaked} secret(s) of {UNTRUSTED_REQUESTS}"
    )
    return leaked == 0 and wildcard_refused and others == 0
