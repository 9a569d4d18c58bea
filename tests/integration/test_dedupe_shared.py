"""RELAY_DEDUPE=shared: a logical capability call runs once across a node's dispatchers."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from schemas import bus, capability, rpc
from schemas.proto.gen import sdk_pb2
from tests.integration.node_errors_support import (
    FAKE_CAP,
    FAKE_METHODS,
    FakeDon,
    ask,
    attested,
    capability_params,
    module_seed,
    node_settings,
)
from workers.attestation.testchain import TestChain
from workers.dispatch.dedupe_shared import (
    BUCKET,
    BUCKET_MAX_BYTES,
    BUCKET_MAX_VALUE_BYTES,
    DedupeUnavailable,
    SharedDeduplicator,
)
from workers.node.process import NodeProcess
from workers.registry.devseed import seed_entries_for
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer

RESULT = bus.DispatchResult(result=msgspec.Raw(b'{"payload":"first"}'))


class Counting:
    """A capability call stand-in that counts its executions."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self._delay_s = delay_s
        self._fail = fail

    def __call__(self) -> Awaitable[bus.DispatchReply]:
        async def work() -> bus.DispatchReply:
            self.calls += 1
            await asyncio.sleep(self._delay_s)
            if self._fail:
                raise ConnectionRefusedError("nobody listened: nothing ran")
            return RESULT

        return work()


@pytest.fixture
async def two(nats_server: NatsServer) -> AsyncIterator[list[SharedDeduplicator]]:
    """Two dispatchers' stores, on their own connections, like two processes."""
    clients: list[Client] = []
    stores = []
    for name in ("dispatch-a", "dispatch-b"):
        nc = await connect(nats_server.url, actor=name)
        clients.append(nc)
        stores.append(await SharedDeduplicator.open(nc, "node-0"))
    try:
        yield stores
    finally:
        for nc in clients:
            if not nc.is_closed:
                await nc.close()


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


async def test_concurrent_duplicates_on_two_dispatchers_run_once(
    two: list[SharedDeduplicator],
) -> None:
    """Both dispatchers get the one outcome; the work ran on exactly one of them."""
    key, work = unique("concurrent"), Counting(delay_s=0.3)
    a, b = await asyncio.gather(*(store.run(key, work) for store in two))
    assert a == b == RESULT
    assert work.calls == 1


async def test_a_later_duplicate_gets_the_recorded_outcome_from_the_store(
    two: list[SharedDeduplicator],
) -> None:
    """The second dispatcher never ran it: the outcome came from the bucket."""
    key, work = unique("later"), Counting()
    assert await two[0].run(key, work) == RESULT
    assert await two[1].run(key, work) == RESULT
    assert (work.calls, two[1].executions) == (1, 0)


async def test_work_that_did_not_run_releases_the_claim(two: list[SharedDeduplicator]) -> None:
    """Nothing ran (unreachable capability), so nothing is remembered and a retry executes."""
    key = unique("released")
    with pytest.raises(ConnectionRefusedError):
        await two[0].run(key, Counting(fail=True))
    work = Counting()
    assert await two[1].run(key, work) == RESULT
    assert work.calls == 1


async def test_a_claim_still_running_past_the_deadline_fails_closed(
    two: list[SharedDeduplicator],
) -> None:
    """A duplicate that cannot get the outcome in time does not run the call a second time."""
    key, slow, other = unique("held"), Counting(delay_s=1.0), Counting()
    first = asyncio.create_task(two[0].run(key, slow))
    for _ in range(200):  # until the first one holds the claim and runs (bounded: 2 s)
        if slow.calls:
            break
        await asyncio.sleep(0.01)
    assert slow.calls == 1
    with pytest.raises(DedupeUnavailable, match="still running elsewhere"):
        await two[1].run(key, other, deadline=time.monotonic() + 0.3)
    assert await first == RESULT
    assert (slow.calls, other.calls) == (1, 0)


async def test_an_unreachable_store_fails_closed(nats_server: NatsServer) -> None:
    """Without the bucket the call is refused, never run unguarded."""
    nc = await connect(nats_server.url, actor="dispatch-c")
    store = await SharedDeduplicator.open(nc, "node-0")
    await nc.close()
    work = Counting()
    with pytest.raises(DedupeUnavailable, match="unreachable"):
        await store.run(unique("closed"), work)
    assert work.calls == 0


async def test_a_retried_request_reaching_another_dispatcher_is_not_executed_again(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A node with two dispatch-capability processes: the capability DON sees one call."""
    chain = TestChain()
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    nc = await connect(nats_server.url, actor="test")
    await load_entries(nc, seed_entries_for(module_seed(chain)))
    cap = FakeDon(lambda call: capability.CapabilityOutcome(payload=b""))
    cap.delay_s = 0.3
    await cap.start(nats_server.url, capability_id=FAKE_CAP, methods=FAKE_METHODS, name="fake-cap")
    settings = node_settings(nats_server.url, root, dedupe="shared")
    dispatchers = [NodeProcess(settings, actors=("dispatch-capability",)) for _ in range(2)]
    front = NodeProcess(settings, actors=("registry", "verifier", "ingress"))
    started: list[NodeProcess] = []
    try:
        for proc in (*dispatchers, front):
            await proc.start()
            started.append(proc)
        payload = base64.b64encode(
            sdk_pb2.CapabilityRequest(method=FAKE_METHODS[0]).SerializeToString()
        ).decode()
        params = capability_params(reference_id=unique("ref"), payload=payload)
        # Six copies of one logical call (new JSON-RPC ids), spread over both dispatchers.
        answers = await asyncio.gather(
            *(
                ask(nc, attested(chain, rpc.MethodCapabilityExec, params, f"id-{i}"))
                for i in range(6)
            )
        )
        results = {json.dumps(json.loads(a)["result"]) for a in answers}
        assert results == {"{}"}, answers
        assert len(cap.calls) == 1
    finally:
        for proc in reversed(started):
            await proc.stop()
        await cap.stop()
        await nc.close()


async def test_the_bucket_is_bounded_in_bytes_and_per_value(nats_server: NatsServer) -> None:
    """Clients drive its writes: the bucket is created with a total and a per-value bound."""
    nc = await connect(nats_server.url, actor="dispatch-bounds")
    try:
        await SharedDeduplicator.open(nc, "node-0")
        info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
        assert info.config.max_bytes == BUCKET_MAX_BYTES
        assert info.config.max_msg_size == BUCKET_MAX_VALUE_BYTES
    finally:
        await nc.close()
