"""A rolling restart as docs/operations.md describes it loses no request: real worker processes,
real attested requests all the while, a new replica made ready before the old one gets SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from google.protobuf import any_pb2, wrappers_pb2

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.cli.health import probe
from workers.node.process import REPO_ROOT, seed_registry
from workers.protocol import binding
from workers.registry.devseed import seed_with_measurements
from workers.runtime.bus import connect, request
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer, free_port

DON, NODE = "relay-don", "node-0"
ROLLED = ("verifier", "dispatch-capability", "ingress")


class Node:
    def __init__(self, server: NatsServer, root: Path, chain: TestChain) -> None:
        self.server = server
        self.root = root
        self.chain = chain
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, actor: str) -> tuple[asyncio.subprocess.Process, int]:
        """One `relay worker` process, once its /readyz answers 200 (bounded)."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(
            RELAY_NATS_URL=self.server.url,
            RELAY_DEV_ROOT_PEM=str(self.root),
            RELAY_HEALTH_PORT=str(port),
            RELAY_LOG_LEVEL="WARNING",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            "worker",
            actor,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.procs.append(proc)
        for _ in range(600):  # bounded: 30 s
            assert proc.returncode is None, f"{actor} exited early"
            ok, _ = await asyncio.to_thread(probe, "127.0.0.1", port, ready=True, timeout_s=1.0)
            if ok:
                return proc, port
            await asyncio.sleep(0.05)
        raise AssertionError(f"{actor} not ready in 30 s")

    def body(self, n: int) -> bytes:
        inner = any_pb2.Any()
        inner.Pack(wrappers_pb2.StringValue(value=f"roll-{n}"))
        payload = sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
        params: dict[str, Any] = {
            "workflow_id": "wf-roll",
            "owner": "0xowner",
            "execution_id": "cd" * 32,
            "reference_id": f"roll-{n}",
            "capability_id": "echo@1.0.0",
            "payload": base64.b64encode(payload).decode(),
        }
        bound = binding.bind(rpc.MethodCapabilityExec, json.dumps(params).encode())
        document = self.chain.document(user_data=bound.user_data)
        params["attestation"] = base64.b64encode(document).decode()
        envelope = {
            "jsonrpc": "2.0",
            "id": f"roll-{n}",
            "method": rpc.MethodCapabilityExec,
            "params": params,
        }
        return json.dumps(envelope).encode()


@pytest_asyncio.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    server = NatsServer(config_file=REPO_ROOT / "nats.conf", jetstream=True)
    await server.start()
    chain = TestChain()
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(seed_with_measurements([chain.trusted_values_json()])))
    running = Node(server, root, chain)
    try:
        await seed_registry(server.url, seed)
        await asyncio.gather(*(running.start(a) for a in ("echo", *ROLLED)))
        yield running
    finally:
        for proc in running.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        await server.stop()
        server.cleanup()


async def test_replacing_every_stage_under_traffic_answers_every_request(node: Node) -> None:
    """New verifier, dispatcher and ingress replicas made ready, then the old ones SIGTERMed, while
    four callers keep sending attested requests: every request gets its echo, none an error,
    including those sent while the old replicas drained."""
    old = list(node.procs[1:])  # the first replicas of the rolled actors
    user, password = credentials_for("gateway")
    nc = await connect(node.server.url, actor="gateway", user=user, password=password)
    answered: list[tuple[float, dict[str, Any]]] = []
    done = asyncio.Event()
    counter = iter(range(100_000))

    async def caller() -> None:
        while not done.is_set():
            body = node.body(next(counter))
            raw = await request(nc, subjects.rpc(DON, NODE), body, timeout_s=10)
            answered.append((time.monotonic(), json.loads(raw)))

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.gather(*(node.start(actor) for actor in ROLLED))
        sigterm_at = time.monotonic()
        for proc in old:
            os.kill(proc.pid, signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in old)), timeout=30)
        exited_at = time.monotonic()
        assert codes == [0] * len(old)
        await asyncio.sleep(1.0)  # traffic goes on through the new replicas alone
        done.set()
        await asyncio.wait_for(asyncio.gather(*callers), timeout=15)
    finally:
        done.set()
        for task in callers:
            task.cancel()
        await nc.close()
    errors = [a for _, a in answered if "error" in a]
    assert errors == []
    during = [t for t, _ in answered if sigterm_at <= t <= exited_at]
    after = [t for t, _ in answered if t > exited_at]
    assert during, "no request was answered while the old replicas drained"
    assert after
