"""`relay demo`: the whole story in one command, on this machine only (127.0.0.1).

An embedded nats-server, the registry seeded, four relay nodes (F = 1) each with all of its
actors, the reference vault and echo capability, the gateway with its HTTP front, and a simulated
enclave holding a test attestation chain (its root enabled explicitly as a development root).
The enclave fetches a secret and decrypts it, calls the echo capability, has a tampered request
and an unknown enclave image rejected, and still gets answers with one node stopped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.msg import Msg

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.http import HttpFront
from workers.gateway.membership import RegistryMembership
from workers.gateway.ratelimit import RateLimit
from workers.node.process import NODE_ACTORS, NodeProcess, embedded_server, start_actor
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.settings import NodeSettings

DON = "relay-don"
NODES = ("node-0", "node-1", "node-2", "node-3")
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"

Say = Callable[[str], None]


class ErrorLog(logging.Handler):
    """Keeps the nodes' "request error" log lines (the full detail that never goes on the wire)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.by_id: dict[str, list[str]] = defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        request_id = getattr(record, "request_id", None)
        detail = getattr(record, "err", None)
        if request_id is not None and detail is not None:
            self.by_id[str(request_id)].append(str(detail))


class NodeWatch:
    """Ops' view of the node responses reaching the gateway: which nodes said what."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, str]] = defaultdict(dict)

    def on_msg(self, msg: Msg) -> None:
        node = (msg.headers or {}).get("Relay-Node", "?")
        try:
            request_id = json.loads(msg.data).get("id", "")
        except ValueError:
            return
        self.by_id[request_id][node] = hashlib.sha256(msg.data).hexdigest()[:8]

    def agreement(self, request_id: str) -> str:
        answers = self.by_id.get(request_id, {})
        groups: dict[str, list[str]] = defaultdict(list)
        for node, digest in sorted(answers.items()):
            groups[digest].append(node)
        return (
            "; ".join(f"{', '.join(nodes)} answered {d}" for d, nodes in groups.items()) or "none"
        )


class Enclave:
    """A simulated enclave: builds params, attests them with the test chain, posts to the gateway."""

    def __init__(self, chain: TestChain, http: aiohttp.ClientSession, url: str) -> None:
        self.chain = chain
        self.key = X25519PrivateKey.generate()
        self._http = http
        self._url = url
        self._n = 0

    def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        pcrs: dict[int, bytes] | None = None,
        tamper: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[str, bytes]:
        self._n += 1
        request_id = f"demo-{self._n}-{os.getpid()}"
        bound = binding.bind(method, json.dumps(params).encode())
        document = self.chain.document(user_data=bound.user_data, pcrs=pcrs)
        sent = {**params, "attestation": base64.b64encode(document).decode()}
        if tamper is not None:
            tamper(sent)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": sent}
        return request_id, json.dumps(body).encode()

    async def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        async with self._http.post(self._url, data=body) as resp:
            return resp.status, await resp.json(content_type=None)


def _secrets_params(enclave: Enclave) -> dict[str, Any]:
    return {
        "workflow_id": "wf-demo",
        "owner": OWNER,
        "execution_id": "00" * 31 + "01",
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": enclave_crypto.public_hex(enclave.key),
    }


def _echo_params(text: str, reference: str) -> dict[str, Any]:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value=text))
    request = sdk_pb2.CapabilityRequest(method="echo", payload=inner)
    return {
        "workflow_id": "wf-demo",
        "owner": OWNER,
        "execution_id": "00" * 31 + "01",
        "reference_id": reference,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(request.SerializeToString()).decode(),
    }


async def run_demo(say: Say) -> bool:
    """Run every step; True when each behaved as it should."""
    started = time.monotonic()
    ok = True
    errors = ErrorLog()
    ingress_log = logging.getLogger("relay.ingress")
    previous = (ingress_log.level, ingress_log.propagate)
    # Collect the nodes' error details to show them, instead of printing them as they come.
    ingress_log.setLevel(logging.ERROR)
    ingress_log.propagate = False
    ingress_log.addHandler(errors)
    server = embedded_server()
    if server.config_file is None:
        os.environ["RELAY_NATS_NO_AUTH"] = "1"  # no users configured: connect without credentials
    await server.start()
    nodes: list[NodeProcess] = []
    extras = []
    closers: list[Callable[[], Any]] = []
    with tempfile.TemporaryDirectory(prefix="relay-demo-") as tmp:
        try:
            say(f"1. nats-server {server.url} (pid {server.pid}), JetStream in a temp dir")
            chain = TestChain()
            root = Path(tmp) / "test-root.pem"
            root.write_bytes(chain.root_pem)
            seed = seed_with_measurements([chain.trusted_values_json()], members=NODES, f=1)
            # Each operator syncs the registry into its own account's bucket; the gateway too.
            for party in (*NODES, "gateway"):
                user, password = credentials_for("registry-admin", party)
                admin = await connect(
                    server.url, actor="registry-admin", user=user, password=password
                )
                await load_entries(admin, seed_entries_for(seed))
                await admin.close()
            say(
                "2. registry seeded into each operator's account and the gateway's: relay DON of"
                " 4 nodes (F=1), vault, echo, the enclave's PCRs"
            )
            say(
                "   test attestation root enabled EXPLICITLY as a development root (never in production)"
            )
            for node in NODES:
                proc = NodeProcess(
                    NodeSettings(don=DON, node=node, nats_url=server.url, dev_root_pem=root),
                    actors=tuple(NODE_ACTORS),
                )
                await proc.start()
                nodes.append(proc)
            for name in ("vault", "echo"):
                extras.append(await start_actor(name, NodeSettings(nats_url=server.url)))
            say(f"3. 4 relay nodes up ({', '.join(NODE_ACTORS)} each); reference vault and echo up")

            user, password = credentials_for("gateway")
            gw_nc = await connect(server.url, actor="gateway", user=user, password=password)
            membership = RegistryMembership(DON)
            await membership.start(gw_nc)
            # Upstream's default node-response limit (10 rps per node) is ample for a demo.
            gateway = GatewayActor(
                gw_nc,
                GatewaySettings(
                    don=DON,
                    handler=HandlerConfig(
                        request_timeout_s=10, per_node_rate=RateLimit(rate=50.0, burst=50)
                    ),
                ),
                membership,
            )
            await gateway.start()
            front = HttpFront(gateway.serve, host="127.0.0.1", port=0)
            await front.start()
            url = f"http://127.0.0.1:{front.port}/"
            say(f"4. gateway up, HTTP front {url}, F+1 = 2 matching node answers needed")

            # The gateway's ops user sees the node responses arriving in the gateway's account.
            user, password = credentials_for("ops", "gateway")
            ops = await connect(server.url, actor="ops", user=user, password=password)
            watch = NodeWatch()

            async def on_node_response(msg: Msg) -> None:
                watch.on_msg(msg)

            await ops.subscribe(subjects.gateway_responses(DON) + ".>", cb=on_node_response)
            closers.append(ops.close)

            async with aiohttp.ClientSession() as http:
                enclave = Enclave(chain, http, url)
                ok &= await _step_secret(say, enclave, watch)
                ok &= await _step_echo(say, enclave, watch, "5b")
                ok &= await _step_rejected(
                    say,
                    enclave,
                    watch,
                    errors,
                    "6",
                    "params changed after attestation",
                    lambda p: p.update(workflow_id="wf-someone-else"),
                    None,
                )
                ok &= await _step_rejected(
                    say,
                    enclave,
                    watch,
                    errors,
                    "7",
                    "an enclave image outside the trusted PCR sets",
                    None,
                    fake_pcrs("unknown-image"),
                )
                stopped = nodes.pop()
                await stopped.stop()
                say("8. stopped node-3 (all its actors); asking again with 3 of 4 nodes")
                ok &= await _step_echo(say, enclave, watch, "8b")
            await front.stop_listening()
            await gateway.stop()
            await front.close()
            await membership.stop()
            await gw_nc.close()
        finally:
            for close in closers:
                await close()
            for proc in nodes:
                await proc.stop()
            for actor in extras:
                await actor.service.stop()
            await server.stop()
            server.cleanup()
            ingress_log.removeHandler(errors)
            ingress_log.setLevel(previous[0])
            ingress_log.propagate = previous[1]
    say(
        f"done in {time.monotonic() - started:.1f}s: everything started was stopped "
        f"({'all steps behaved as expected' if ok else 'SOME STEP FAILED'})"
    )
    return ok


async def _step_secret(say: Say, enclave: Enclave, watch: NodeWatch) -> bool:
    request_id, body = enclave.request(rpc.MethodSecretsGet, _secrets_params(enclave))
    say(
        f"5. enclave -> confidential.secrets.get API_KEY (id {request_id}, attested, key {enclave_crypto.public_hex(enclave.key)[:16]}…)"
    )
    status, answer = await enclave.post(body)
    await asyncio.sleep(0.05)  # let the slower nodes' answers reach the ops watch
    say(f"   HTTP {status}; {watch.agreement(request_id)}")
    if status != 200 or "result" not in answer:
        say(f"   UNEXPECTED: {answer}")
        return False
    (secret,) = answer["result"]["secrets"]
    ciphertext = base64.b64decode(secret["ciphertext"])
    shares = [base64.b64decode(s) for s in secret["encrypted_shares"]]
    # The vault bound them to the secret's name and this request (its id is the reference).
    bound = {"name": f"{secret['id']['namespace']}/{secret['id']['key']}".encode(),
             "reference": request_id.encode()}  # fmt: skip
    plain = enclave_crypto.decrypt_secret(ciphertext, shares, enclave.key, **bound)
    say(
        f"   the enclave opened {len(shares)} shares with its private key: API_KEY = {plain.decode()!r}"
    )
    try:
        enclave_crypto.decrypt_secret(ciphertext, shares, X25519PrivateKey.generate(), **bound)
        say("   UNEXPECTED: another key opened the shares")
        return False
    except enclave_crypto.DecryptionError:
        say("   another key cannot open them: the secret arrived only for the attested key")
    return True


async def _step_echo(say: Say, enclave: Enclave, watch: NodeWatch, step: str) -> bool:
    request_id, body = enclave.request(
        rpc.MethodCapabilityExec, _echo_params("hello from the enclave", step)
    )
    say(
        f"{step}. enclave -> confidential.capability.execute echo@1.0.0 'hello from the enclave' (id {request_id})"
    )
    status, answer = await enclave.post(body)
    await asyncio.sleep(0.05)
    say(f"   HTTP {status}; {watch.agreement(request_id)}")
    if status != 200 or "payload" not in answer.get("result", {}):
        say(f"   UNEXPECTED: {answer}")
        return False
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(answer["result"]["payload"]))
    echoed = wrappers_pb2.StringValue()
    response.payload.Unpack(echoed)
    say(f"   echo answered {echoed.value!r}")
    return echoed.value == "hello from the enclave"


async def _step_rejected(
    say: Say,
    enclave: Enclave,
    watch: NodeWatch,
    errors: ErrorLog,
    step: str,
    what: str,
    tamper: Callable[[dict[str, Any]], None] | None,
    pcrs: dict[int, bytes] | None,
) -> bool:
    request_id, body = enclave.request(
        rpc.MethodCapabilityExec, _echo_params("x", step), pcrs=pcrs, tamper=tamper
    )
    say(f"{step}. enclave -> capability.execute with {what} (id {request_id})")
    status, answer = await enclave.post(body)
    await asyncio.sleep(0.05)
    say(f"   HTTP {status}; {watch.agreement(request_id)}; error {json.dumps(answer.get('error'))}")
    expected = {"code": -32603, "message": "internal error"}
    if answer.get("error") != expected:
        say("   UNEXPECTED: it was not rejected")
        return False
    say(
        "   rejected by every honest node; only the sanitised error left the nodes. Their logs say:"
    )
    for detail in sorted(set(errors.by_id.get(request_id, [])))[:1]:
        say(f"   {detail[:150]}")
    return True
