"""RELAY_DEDUPE=shared for the N4 memo: a node's ingress replicas share signed results via KV."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from workers.ingress.memo import MemoUnavailable, MemoWaitTimeout
from workers.ingress.memo_shared import (
    BUCKET,
    BUCKET_MAX_BYTES,
    BUCKET_MAX_VALUE_BYTES,
    SharedResponseMemo,
)
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer

SIGNED = b'{"result":{},"signature":{"signer":"AA==","signature":"AA=="}}'


class Counting:
    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.error = error
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return SIGNED


@pytest.fixture
async def two(nats_server: NatsServer) -> AsyncIterator[list[SharedResponseMemo]]:
    """Two ingress replicas' memos, on their own connections, like two processes."""
    clients: list[Client] = []
    memos = []
    for name in ("ingress-a", "ingress-b"):
        nc = await connect(nats_server.url, actor=name)
        clients.append(nc)
        memos.append(await SharedResponseMemo.open(nc, "node-0"))
    try:
        yield memos
    finally:
        for nc in clients:
            if not nc.is_closed:
                await nc.close()


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def later(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_a_retry_reaching_another_replica_gets_the_shared_signed_result(
    two: list[SharedResponseMemo],
) -> None:
    """The second replica never served the key: its answer came from the bucket."""
    key, work = unique("later"), Counting()
    assert await two[0].run(key, work, deadline=later()) == SIGNED
    assert await two[1].run(key, work, deadline=later()) == SIGNED
    assert (work.calls, two[1].executions) == (1, 0)


async def test_concurrent_requests_on_two_replicas_are_served_once(
    two: list[SharedResponseMemo],
) -> None:
    """Both replicas answer the one result; the work ran on exactly one of them."""
    key, work = unique("concurrent"), Counting(delay_s=0.3)
    a, b = await asyncio.gather(*(m.run(key, work, deadline=later()) for m in two))
    assert a == b == SIGNED
    assert work.calls == 1


async def test_a_failed_request_releases_its_claim_so_a_retry_is_served(
    two: list[SharedResponseMemo],
) -> None:
    """Errors are not remembered: after a failure the other replica serves the key itself."""
    key = unique("failed")
    with pytest.raises(ValueError, match="boom"):
        await two[0].run(key, Counting(error=ValueError("boom")), deadline=later())
    work = Counting()
    assert await two[1].run(key, work, deadline=later()) == SIGNED
    assert work.calls == 1


async def test_a_waiter_on_another_replica_past_its_deadline_times_out(
    two: list[SharedResponseMemo],
) -> None:
    """A request whose key is still running elsewhere ends at its own deadline, not served."""
    key, slow, other = unique("held"), Counting(delay_s=1.0), Counting()
    first = asyncio.create_task(two[0].run(key, slow, deadline=later()))
    for _ in range(200):  # until the first one holds the claim (bounded: 2 s)
        if slow.calls:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(MemoWaitTimeout):
        await two[1].run(key, other, deadline=later(0.3))
    assert await first == SIGNED
    assert (slow.calls, other.calls) == (1, 0)


async def test_an_unreachable_bucket_fails_closed(nats_server: NatsServer) -> None:
    """Without the bucket the request is refused, not served unshared."""
    nc = await connect(nats_server.url, actor="ingress-c")
    memo = await SharedResponseMemo.open(nc, "node-0")
    await nc.close()
    work = Counting()
    with pytest.raises(MemoUnavailable, match="unreachable"):
        await memo.run(unique("closed"), work, deadline=later())
    assert work.calls == 0


async def test_the_bucket_is_bounded_in_bytes_and_per_value(nats_server: NatsServer) -> None:
    """Clients drive its writes: the bucket has a total and a per-value bound."""
    nc = await connect(nats_server.url, actor="ingress-bounds")
    try:
        await SharedResponseMemo.open(nc, "node-0")
        info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
        assert info.config.max_bytes == BUCKET_MAX_BYTES
        assert info.config.max_msg_size == BUCKET_MAX_VALUE_BYTES
    finally:
        await nc.close()
