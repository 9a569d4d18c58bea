"""One relay node's actors on a real nats-server: ingress -> registry -> verifier -> dispatch."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import bus, rpc, subjects
from tests.integration.node_errors_support import node_settings
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.node.process import NodeProcess
from workers.protocol import binding
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import Headers, Service, connect, request_msg
from workers.runtime.natsserver import NatsServer

DON, NODE = "relay-don", "node-0"


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="module")
def root_pem(chain: TestChain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roots") / "root.pem"
    path.write_bytes(chain.root_pem)
    return path


async def fake_dispatch(nc: Client) -> Service:
    """Stands in for the dispatch actors: echoes which params it was given as the result."""

    async def serve(data: bytes, headers: Headers) -> bytes:
        req = bus.DISPATCH_REQUEST_DECODER.decode(data)
        result = json.dumps({"payload": base64.b64encode(bytes(req.params)).decode()})
        return bus.ENCODER.encode(bus.DispatchResult(result=msgspec.Raw(result.encode())))

    svc = Service(nc, name="relay-dispatch-fake", description="test")
    for method in rpc.METHODS:
        await svc.add_endpoint(
            name=subjects.encode_token(method),
            subject=subjects.dispatch(DON, NODE, method),
            queue=subjects.dispatch_queue(method),
            handler=serve,
        )
    await svc.start()
    return svc


@pytest.fixture
async def node(
    nats_server: NatsServer, chain: TestChain, root_pem: Path, nc: Client
) -> AsyncIterator[NodeProcess]:
    await load_entries(nc, seed_entries_for(seed_with_measurements([chain.trusted_values_json()])))
    dispatch_nc = await connect(nats_server.url, actor="dispatch-fake")
    dispatch = await fake_dispatch(dispatch_nc)
    proc = NodeProcess(
        node_settings(nats_server.url, root_pem), actors=("registry", "verifier", "ingress")
    )
    await proc.start()
    try:
        yield proc
    finally:
        await proc.stop()
        await dispatch.stop()


def capability_request(chain: TestChain, *, tamper: bool = False, **params: Any) -> bytes:
    body: dict[str, Any] = {
        "workflow_id": "wf-1",
        "owner": "0xowner",
        "execution_id": "00" * 32,
        "reference_id": "17",
        "capability_id": "echo@1.0.0",
        "payload": "",
    }
    body.update(params)
    bound = binding.bind(rpc.MethodCapabilityExec, json.dumps(body).encode())
    body["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
    if tamper:
        body["workflow_id"] = "wf-evil"
    return json.dumps(
        {"jsonrpc": "2.0", "id": "req-1", "method": rpc.MethodCapabilityExec, "params": body}
    ).encode()


async def ask(nc: Client, raw: bytes, timeout_s: float = 5.0) -> tuple[dict[str, Any], Headers]:
    msg = await request_msg(nc, subjects.rpc(DON, NODE), raw, timeout_s=timeout_s)
    decoded: dict[str, Any] = json.loads(msg.data)
    return decoded, msg.headers


async def test_an_attested_request_passes_every_stage(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """Registry PCRs, test-chain attestation and binding all agree: dispatch answers."""
    response, headers = await ask(nc, capability_request(chain))
    assert "error" not in response, response
    hashed = base64.b64decode(response["result"]["payload"])
    assert b"attestation" not in hashed
    assert json.loads(hashed)["workflow_id"] == "wf-1"
    assert headers is not None
    assert headers["Relay-Node"] == NODE


async def test_params_changed_after_attestation_are_rejected(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """A tampered field breaks the user_data binding: sanitised -32603."""
    response, _ = await ask(nc, capability_request(chain, tamper=True))
    assert response["error"] == {"code": -32603, "message": "internal error"}


async def test_pcrs_outside_the_trusted_sets_are_rejected(
    nats_server: NatsServer, node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """The registry trusts other PCRs: the same genuine document is refused."""
    other = chain.trusted_values_json(fake_pcrs("another-image"))
    await load_entries(nc, seed_entries_for(seed_with_measurements([other])))
    deadline = time.monotonic() + 5  # the registry picks changes up within a second
    response, _ = await ask(nc, capability_request(chain))
    while "error" not in response and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        response, _ = await ask(nc, capability_request(chain))
    assert response["error"] == {"code": -32603, "message": "internal error"}


async def test_newly_trusted_measurements_are_served_within_a_second_without_restart(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """From refused to accepted: a registry write reaches the running actors' views in < 1 s."""
    other = chain.trusted_values_json(fake_pcrs("another-image"))
    await load_entries(nc, seed_entries_for(seed_with_measurements([other])))
    deadline = time.monotonic() + 3
    while "error" not in (await ask(nc, capability_request(chain)))[0]:
        assert time.monotonic() < deadline, "the old measurements were never replaced"
        await asyncio.sleep(0.05)
    await load_entries(nc, seed_entries_for(seed_with_measurements([chain.trusted_values_json()])))
    written = time.monotonic()
    while "error" in (await ask(nc, capability_request(chain)))[0]:
        assert time.monotonic() - written < 1.0, "not served within a second of the write"
        await asyncio.sleep(0.02)


async def test_garbage_on_the_rpc_subject_gets_a_parse_error_and_the_node_keeps_serving(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """Random bytes answer -32700; the next real request still succeeds."""
    response, _ = await ask(nc, b"\x00\xffnot json")
    assert response["error"]["code"] == -32700
    response, _ = await ask(nc, capability_request(chain))
    assert "result" in response


async def test_a_disabled_node_takes_no_requests(
    nats_server: NatsServer, nc: Client, root_pem: Path
) -> None:
    """With the kill switch off the rpc subject has no responders."""
    from workers.runtime.bus import StageUnavailable

    proc = NodeProcess(node_settings(nats_server.url, root_pem, enabled=False), actors=("ingress",))
    await proc.start()
    try:
        with pytest.raises(StageUnavailable):
            await request_msg(nc, subjects.rpc(DON, "node-disabled"), b"{}", timeout_s=1)
        with pytest.raises(StageUnavailable):
            await request_msg(nc, subjects.rpc(DON, NODE), b"{}", timeout_s=1)
    finally:
        await proc.stop()


@pytest.fixture
async def two_verifiers(
    nats_server: NatsServer, chain: TestChain, root_pem: Path, nc: Client
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Registry, ingress and a fake dispatch in this process; two `relay worker verifier`s."""
    await load_entries(nc, seed_entries_for(seed_with_measurements([chain.trusted_values_json()])))
    dispatch_nc = await connect(nats_server.url, actor="dispatch-fake")
    dispatch = await fake_dispatch(dispatch_nc)
    proc = NodeProcess(node_settings(nats_server.url, root_pem), actors=("registry", "ingress"))
    await proc.start()
    env = {**os.environ, "RELAY_NATS_NO_AUTH": "1"}
    cmd = [
        sys.executable, "-m", "workers.cli", "worker", "verifier",
        "--nats", nats_server.url, "--don", DON, "--node", NODE, "--dev-root", str(root_pem),
    ]  # fmt: skip
    workers = [
        await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            line = await asyncio.wait_for(w.stdout.readline(), 20)
            assert b"ready" in line
        yield workers
    finally:
        for w in workers:
            if w.returncode is None:
                os.kill(w.pid, signal.SIGTERM)
            await asyncio.wait_for(w.wait(), 15)
        await proc.stop()
        await dispatch.stop()


async def test_a_killed_verifier_is_replaced_by_another_within_the_deadline(
    two_verifiers: list[asyncio.subprocess.Process], chain: TestChain, nc: Client
) -> None:
    """Requests in flight when a verifier process dies are retried on a second verifier."""
    requests = [asyncio.create_task(ask(nc, capability_request(chain))) for _ in range(40)]
    await asyncio.sleep(0.02)
    os.kill(two_verifiers[0].pid, signal.SIGKILL)
    answers = await asyncio.gather(*requests)
    assert all("result" in response for response, _ in answers), answers


async def test_a_verifier_stopped_by_sigterm_finishes_its_requests_and_exits_cleanly(
    two_verifiers: list[asyncio.subprocess.Process], chain: TestChain, nc: Client
) -> None:
    """SIGTERM drains: nothing it accepted is lost (no request is sent for verification a
    second time, as a lost one would be after its attempt timed out), exit code 0."""
    sent: list[bytes] = []

    async def count(msg: Msg) -> None:
        sent.append(msg.data)

    # A plain subscription beside the queue group sees every verify request the ingress sends.
    watch = await nc.subscribe(subjects.verify(DON, NODE), cb=count)
    await nc.flush()
    bodies = [capability_request(chain) for _ in range(200)]  # minted before the clock
    requests = [asyncio.create_task(ask(nc, body)) for body in bodies]
    await asyncio.sleep(0.03)  # both verifiers now hold queued work (about 80 ms of it)
    os.kill(two_verifiers[0].pid, signal.SIGTERM)
    answers = await asyncio.gather(*requests)
    assert all("result" in response for response, _ in answers), answers
    await nc.flush()
    await watch.unsubscribe()
    assert len(sent) == len(bodies)  # each request verified once: none lost and retried
    assert await asyncio.wait_for(two_verifiers[0].wait(), 15) == 0
