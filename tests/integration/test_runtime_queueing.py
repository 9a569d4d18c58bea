"""Arrival stamps, queue expiry and the max_payload guard of the runtime's Service, on a real server."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client
from nats.aio.msg import Msg

from workers.runtime.arrival import arrived_at, stamp_arrivals
from workers.runtime.bus import Headers, Service, accepted_at, connect, request
from workers.runtime.natsserver import NatsServer


async def test_a_message_is_stamped_when_queued_not_when_its_callback_runs(
    nats_server: NatsServer, nc: Client
) -> None:
    """Behind a slow callback, the third message's stamp predates its callback by both waits."""
    server_nc = await connect(nats_server.url, actor="stamps")
    lags: list[float] = []
    done = asyncio.Event()

    async def slow(msg: Msg) -> None:
        stamp = arrived_at(msg)
        assert stamp is not None
        lags.append(time.monotonic() - stamp)
        await asyncio.sleep(0.3)
        if len(lags) == 3:
            done.set()

    sub = await server_nc.subscribe("t.stamps", cb=slow)
    stamp_arrivals(sub)
    await server_nc.flush()
    try:
        for n in range(3):
            await nc.publish("t.stamps", str(n).encode())
        await nc.flush()
        await asyncio.wait_for(done.wait(), 10)
        assert lags[0] < 0.2
        assert lags[2] > 0.5  # it waited for two callbacks inside nats-py's queue
    finally:
        await server_nc.close()


async def test_a_request_queued_past_its_budget_is_answered_at_its_deadline(
    nats_server: NatsServer, nc: Client
) -> None:
    """One slot held for 3 s, a 0.5 s queue budget: the queued request gets on_expired at ~0.5 s."""
    server_nc = await connect(nats_server.url, actor="expiry")
    release = asyncio.Event()
    seen_arrival: list[float] = []

    async def hold(data: bytes, headers: Headers) -> bytes:
        await asyncio.wait_for(release.wait(), 3.0)
        return b"served:" + data

    def expired(data: bytes, headers: Headers) -> bytes:
        seen_arrival.append(accepted_at())
        return b"expired:" + data

    svc = Service(server_nc, name="relay-test-expiry", description="test", concurrency=1)
    await svc.add_endpoint(
        name="hold",
        subject="t.expiry",
        queue="q",
        handler=hold,
        queue_budget_s=0.5,
        on_expired=expired,
    )
    await svc.start()
    try:
        first = asyncio.create_task(request(nc, "t.expiry", b"1", timeout_s=5))
        await asyncio.sleep(0.1)
        sent = time.monotonic()
        second = await request(nc, "t.expiry", b"2", timeout_s=5)
        elapsed = time.monotonic() - sent
        assert second == b"expired:2"
        assert 0.4 < elapsed < 1.5, elapsed
        (arrival,) = seen_arrival
        assert arrival <= sent + 0.2  # the arrival, not the expiry time
        release.set()
        assert await first == b"served:1"
    finally:
        release.set()
        await svc.stop()


async def test_a_reply_over_max_payload_becomes_the_endpoints_fallback(
    nats_server: NatsServer, nc: Client
) -> None:
    """A handler's reply one byte over max_payload (headers counted) is replaced at once."""
    server_nc = await connect(nats_server.url, actor="too-large")
    limit = server_nc.max_payload

    async def huge(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        # The payload alone fits; with its header it does not (nats-py checks only the payload).
        return b"x" * (limit - 4), {"Relay-Node": "node-0"}

    svc = Service(server_nc, name="relay-test-too-large", description="test")
    await svc.add_endpoint_with_headers(
        name="huge",
        subject="t.huge",
        queue="q",
        handler=huge,
        on_too_large=lambda data, headers: (b"too large", None),
    )
    await svc.start()
    try:
        started = time.monotonic()
        assert await request(nc, "t.huge", b"?", timeout_s=5) == b"too large"
        assert time.monotonic() - started < 2.0
        assert server_nc.is_connected  # the server did not close the connection
    finally:
        await svc.stop()


async def test_a_reply_over_max_payload_without_a_fallback_sends_the_failure_reply(
    nats_server: NatsServer, nc: Client
) -> None:
    """With only a service-wide failure_reply, that is what the requester gets."""
    server_nc = await connect(nats_server.url, actor="too-large-2")
    limit = server_nc.max_payload

    async def huge(data: bytes, headers: Headers) -> bytes:
        return b"x" * (limit + 1)

    svc = Service(server_nc, name="relay-test-failure", description="test", failure_reply=b"failed")
    await svc.add_endpoint(name="huge", subject="t.huge2", queue="q", handler=huge)
    await svc.start()
    try:
        assert await request(nc, "t.huge2", b"?", timeout_s=5) == b"failed"
    finally:
        await svc.stop()


async def test_a_request_past_the_queue_bound_is_answered_at_once_not_dropped(
    nats_server: NatsServer, nc: Client
) -> None:
    """One slot busy, one request queued, the queue full: the third gets on_expired at once."""
    server_nc = await connect(nats_server.url, actor="overflow")
    release = asyncio.Event()

    async def hold(data: bytes, headers: Headers) -> bytes:
        await asyncio.wait_for(release.wait(), 5.0)
        return b"served:" + data

    svc = Service(
        server_nc, name="relay-test-overflow", description="test", concurrency=1, max_queued=1
    )
    await svc.add_endpoint(
        name="hold",
        subject="t.overflow",
        queue="q",
        handler=hold,
        on_expired=lambda data, headers: b"overloaded:" + data,
    )
    await svc.start()
    try:
        first = asyncio.create_task(request(nc, "t.overflow", b"1", timeout_s=5))
        second = asyncio.create_task(request(nc, "t.overflow", b"2", timeout_s=5))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert await request(nc, "t.overflow", b"3", timeout_s=5) == b"overloaded:3"
        assert time.monotonic() - started < 1.0
        release.set()
        assert await first == b"served:1"
        assert await second == b"served:2"
    finally:
        release.set()
        await svc.stop()
