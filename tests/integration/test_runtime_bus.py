"""The shared runtime against a real nats-server: concurrency, typed failures, graceful stop."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from nats.aio.client import Client

from schemas import bus
from workers.registry.client import ActorRegistry
from workers.runtime.bus import (
    MAX_SUBJECT_BYTES,
    Headers,
    Service,
    StageTimeout,
    StageUnavailable,
    accepted_at,
    connect,
    request,
    request_pure,
)
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings


async def test_endpoint_handlers_run_concurrently_up_to_the_bound(
    nats_server: NatsServer, nc: Client
) -> None:
    """Ten slow requests on a service with 4 slots overlap, but never more than 4 at once."""
    server_nc = await connect(nats_server.url, actor="svc")
    running = 0
    peak = 0

    async def slow(data: bytes, headers: Headers) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return data.upper()

    svc = Service(server_nc, name="relay-test", description="test", concurrency=4)
    await svc.add_endpoint(name="slow", subject="t.slow", queue="q1", handler=slow)
    await svc.start()
    try:
        replies = await asyncio.gather(
            *(request(nc, "t.slow", f"m{i}".encode(), timeout_s=5) for i in range(10))
        )
        assert sorted(replies) == sorted(f"M{i}".encode() for i in range(10))
        assert peak == 4
    finally:
        await svc.stop()


async def test_a_subject_nobody_serves_is_unavailable_at_once(nc: Client) -> None:
    """No responders surfaces as StageUnavailable, not as a timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StageUnavailable):
        await request(nc, "t.nobody", b"x", timeout_s=5)
    assert loop.time() - started < 1


async def test_a_slow_stage_times_out_within_its_deadline(
    nats_server: NatsServer, nc: Client
) -> None:
    """A handler slower than the request timeout gives StageTimeout close to the deadline."""
    server_nc = await connect(nats_server.url, actor="svc")

    async def too_slow(data: bytes, headers: Headers) -> bytes:
        await asyncio.sleep(1)
        return data

    svc = Service(server_nc, name="relay-test-slow", description="test")
    await svc.add_endpoint(name="slow", subject="t.tooslow", queue="q", handler=too_slow)
    await svc.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StageTimeout):
            await request(nc, "t.tooslow", b"x", timeout_s=0.2)
        assert loop.time() - started < 0.6
    finally:
        await svc.stop()


async def test_a_failing_handler_sends_nothing_and_the_endpoint_keeps_serving(
    nats_server: NatsServer, nc: Client
) -> None:
    """An exception in a handler is logged, leaks nothing, and the next request is served."""
    server_nc = await connect(nats_server.url, actor="svc")

    async def picky(data: bytes, headers: Headers) -> bytes:
        if data == b"boom":
            raise RuntimeError("secret detail")
        return b"ok"

    svc = Service(server_nc, name="relay-test-picky", description="test")
    await svc.add_endpoint(name="picky", subject="t.picky", queue="q", handler=picky)
    await svc.start()
    try:
        with pytest.raises(StageTimeout):
            await request(nc, "t.picky", b"boom", timeout_s=0.3)
        assert await request(nc, "t.picky", b"fine", timeout_s=2) == b"ok"
    finally:
        await svc.stop()


async def test_stop_finishes_requests_already_in_flight(
    nats_server: NatsServer, nc: Client
) -> None:
    """Requests accepted before stop() are all answered; none is dropped."""
    server_nc = await connect(nats_server.url, actor="svc")

    async def slow(data: bytes, headers: Headers) -> bytes:
        await asyncio.sleep(0.2)
        return data

    svc = Service(server_nc, name="relay-test-drain", description="test", concurrency=8)
    await svc.add_endpoint(name="slow", subject="t.drain", queue="q", handler=slow)
    await svc.start()
    pending = [
        asyncio.create_task(request(nc, "t.drain", f"{i}".encode(), timeout_s=5)) for i in range(8)
    ]
    await asyncio.sleep(0.05)  # let all 8 reach the handler
    await svc.stop()
    replies = await asyncio.gather(*pending)
    assert sorted(replies) == sorted(f"{i}".encode() for i in range(8))
    assert server_nc.is_closed


async def test_connecting_to_a_server_that_is_not_there_fails_within_the_bound() -> None:
    """The first connection is bounded in time instead of retrying forever."""
    from workers.runtime.natsserver import free_port

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError, match="could not connect"):
        await connect(f"nats://127.0.0.1:{free_port()}", actor="lost", initial_timeout_s=0.5)
    assert loop.time() - started < 3


async def test_micro_stats_report_serving_time_and_handler_failures(
    nats_server: NatsServer, nc: Client
) -> None:
    """$SRV.STATS shows the time from accept to reply and counts a failing handler, by type."""
    server_nc = await connect(nats_server.url, actor="svc")
    release = asyncio.Event()

    async def slow_or_failing(data: bytes, headers: Headers) -> bytes:
        if data == b"fail":
            raise RuntimeError("secret-looking detail 0xdeadbeef")
        if data == b"hold":
            await release.wait()
        else:
            await asyncio.sleep(0.05)
        return data

    svc = Service(server_nc, name="relay-stats-test", description="test", concurrency=4)
    await svc.add_endpoint(name="work", subject="t.stats", queue="q", handler=slow_or_failing)
    await svc.start()

    async def endpoint_stats() -> dict[str, object]:
        answer = await nc.request("$SRV.STATS.relay-stats-test", b"", timeout=5)
        (endpoint,) = json.loads(answer.data)["endpoints"]
        assert isinstance(endpoint, dict)
        return endpoint

    try:
        for _ in range(3):
            assert await request(nc, "t.stats", b"ok", timeout_s=5) == b"ok"
        with pytest.raises(StageTimeout):
            await request(nc, "t.stats", b"fail", timeout_s=0.3)
        held = asyncio.create_task(request(nc, "t.stats", b"hold", timeout_s=5))
        for _ in range(100):
            if svc.in_flight:
                break
            await asyncio.sleep(0.01)

        stats = await endpoint_stats()
        assert stats["num_requests"] == 5
        assert stats["num_errors"] == 1
        assert stats["last_error"] == "RuntimeError"
        assert "deadbeef" not in json.dumps(stats)
        assert stats["data"] == {"in_flight": 1, "queued": 0, "expired": 0, "too_large": 0}
        average = stats["average_processing_time"]
        assert isinstance(average, int)
        # Three requests of >= 50 ms and a failure of ~0 ms, over four completed.
        assert average >= 3 * 50_000_000 // 4
        release.set()
        assert await held == b"hold"
        assert (await endpoint_stats())["data"] == {
            "in_flight": 0,
            "queued": 0,
            "expired": 0,
            "too_large": 0,
        }
    finally:
        release.set()
        await svc.stop()


async def test_a_failure_reply_answers_a_failing_handler_and_an_unsendable_reply_at_once(
    nats_server: NatsServer, nc: Client
) -> None:
    """With `failure_reply`, a raising handler and a reply over max_payload both get it promptly."""
    server_nc = await connect(nats_server.url, actor="svc")

    async def troubled(data: bytes, headers: Headers) -> bytes:
        if data == b"boom":
            raise RuntimeError("secret detail")
        if data == b"huge":
            return b"x" * (server_nc.max_payload + 1)
        return b"ok"

    svc = Service(server_nc, name="relay-test-failure", description="test", failure_reply=b"failed")
    await svc.add_endpoint(name="troubled", subject="t.troubled", queue="q", handler=troubled)
    await svc.start()
    try:
        for body in (b"boom", b"huge"):
            started = asyncio.get_running_loop().time()
            assert await request(nc, "t.troubled", body, timeout_s=5) == b"failed"
            assert asyncio.get_running_loop().time() - started < 1.0
        assert await request(nc, "t.troubled", b"fine", timeout_s=2) == b"ok"
        assert server_nc.is_connected
    finally:
        await svc.stop()


async def test_a_subject_too_long_for_the_server_is_refused_without_losing_the_connection(
    nc: Client,
) -> None:
    """A subject over MAX_SUBJECT_BYTES is unavailable at once; nats-server never sees it."""
    with pytest.raises(StageUnavailable, match="bytes"):
        await request(nc, "t." + "a" * MAX_SUBJECT_BYTES, b"x", timeout_s=2)
    assert nc.is_connected
    with pytest.raises(StageUnavailable):  # the connection still works: a normal no-responders
        await request(nc, "t.nobody-here", b"x", timeout_s=2)


async def test_a_pure_stage_nobody_serves_is_asked_again_after_a_pause_not_in_a_tight_loop(
    nc: Client,
) -> None:
    """No responders for half a second: about ten attempts (50 ms apart), then that failure."""
    sent_before = nc.stats["out_msgs"]
    started = time.monotonic()
    with pytest.raises(StageUnavailable):
        await request_pure(nc, "t.nobody-pure", b"x", deadline=started + 0.5, attempt_timeout_s=0.2)
    elapsed = time.monotonic() - started
    attempts = nc.stats["out_msgs"] - sent_before
    assert 0.45 < elapsed < 1.5
    assert 2 <= attempts <= 12, attempts


async def test_actor_registry_lookups_back_off_while_no_registry_actor_answers(
    nats_server: NatsServer, nc: Client
) -> None:
    """RELAY_REGISTRY_LOOKUPS=actor with no registry actor: a bounded, paced retry, then -32603."""
    settings = NodeSettings(nats_url=nats_server.url, don="don-x", node="node-x")
    lookups = ActorRegistry(nc, settings)
    sent_before = nc.stats["out_msgs"]
    reply = await lookups.measurements(time.monotonic() + 0.5)
    assert isinstance(reply, bus.StageError)
    assert reply.code == -32603
    assert nc.stats["out_msgs"] - sent_before <= 12


async def test_a_handler_sees_when_its_request_was_accepted_before_waiting_for_a_slot(
    nats_server: NatsServer, nc: Client
) -> None:
    """With one slot, the second request waits; accepted_at() is from before that wait."""
    server_nc = await connect(nats_server.url, actor="svc")
    seen: list[tuple[float, float]] = []

    async def slow(data: bytes, headers: Headers) -> bytes:
        seen.append((accepted_at(), time.monotonic()))
        await asyncio.sleep(0.5)
        return data

    svc = Service(server_nc, name="relay-test-accepted", description="test", concurrency=1)
    await svc.add_endpoint(name="slow", subject="t.accepted", queue="q", handler=slow)
    await svc.start()
    try:
        await asyncio.gather(
            request(nc, "t.accepted", b"1", timeout_s=5),
            request(nc, "t.accepted", b"2", timeout_s=5),
        )
        (first_accepted, first_started), (second_accepted, second_started) = seen
        assert first_started - first_accepted < 0.2
        assert second_started - second_accepted > 0.3  # it waited for the first one's slot
    finally:
        await svc.stop()


async def test_readiness_says_starting_then_ok_then_draining_and_names_failing_checks(
    nats_server: NatsServer,
) -> None:
    """Not ready before the server acknowledged the subscriptions, nor once intake stops; an
    added check that fails is named with its reason."""
    server_nc = await connect(nats_server.url, actor="svc")
    svc = Service(server_nc, name="relay-test-ready", description="test")

    async def echo(data: bytes, headers: Headers) -> bytes:
        return data

    loaded: list[str] = []
    svc.add_readiness_check("registry", lambda: None if loaded else "registry view not loaded")
    await svc.add_endpoint(name="echo", subject="t.ready", queue="q", handler=echo)
    assert svc.readiness() == {"service": "starting", "registry": "registry view not loaded"}
    await svc.start()
    assert svc.readiness()["service"] == "ok"
    loaded.append("yes")
    assert svc.readiness() == {"service": "ok", "registry": "ok"}
    await svc.stop_intake()
    assert svc.readiness()["service"] == "draining"
    await svc.stop()
