"""The HTTP front cannot be starved (issue 13, defect 3): timeouts, a connection cap, disconnects.

In-process fronts with short timeouts on loopback, plus one `relay gateway` process started with
a 256 file-descriptor limit that is held more idle connections than that limit allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.integration.gateway_fakes import (
    delayed,
    fake_don,
    honest,
    rpc_body,
    running_gateway,
    unique_don,
)
from workers.gateway.http import HttpFront, HttpLimits
from workers.runtime.natsserver import NatsServer, free_port

MEMBERS = ("0x0000", "0x0001", "0x0002", "0x0003")
MARGIN_S = 1.5  # a timer's firing and the close reaching the client, on a loaded shared machine


@asynccontextmanager
async def front_with(
    nats_server: NatsServer, limits: HttpLimits, *, delay_s: float = 0.0
) -> AsyncIterator[HttpFront]:
    don = unique_don()
    behaviour = delayed(delay_s, honest()) if delay_s else honest()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, behaviour)),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        front = HttpFront(gateway.serve, host="127.0.0.1", port=0, limits=limits)
        await front.start()
        try:
            yield front
        finally:
            await front.close()


def raw_post(body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        b"POST / HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
        + body
    )


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> float:
    """Read until the server closes the connection; how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def test_a_connection_that_sends_no_headers_is_closed_after_the_header_timeout(
    nats_server: NatsServer,
) -> None:
    """Nothing sent, or half a request line: both closed at the header timeout, not held."""
    limits = HttpLimits(header_timeout_s=1.0, keepalive_timeout_s=30.0, read_timeout_s=30.0)
    async with front_with(nats_server, limits) as front:
        silent = await asyncio.open_connection("127.0.0.1", front.port)
        slow = await asyncio.open_connection("127.0.0.1", front.port)
        slow[1].write(b"POST / HTTP/1.1\r\nHost: rel")
        waited = await asyncio.gather(
            closed_within(silent[0], 1.0 + MARGIN_S), closed_within(slow[0], 1.0 + MARGIN_S)
        )
        assert all(w > 0.8 for w in waited), waited
        assert front.counts.closed["header_timeout"] == 2
        for _, writer in (silent, slow):
            writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    nats_server: NatsServer,
) -> None:
    """One request answered on a kept-alive connection, then silence: closed at 1 s."""
    limits = HttpLimits(header_timeout_s=30.0, keepalive_timeout_s=1.0, read_timeout_s=30.0)
    async with front_with(nats_server, limits) as front:
        reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
        writer.write(raw_post(rpc_body("ka-1")))
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 200"), status
        assert await closed_within(reader, 1.0 + MARGIN_S) < 1.0 + MARGIN_S
        assert front.counts.closed["keepalive_timeout"] == 1
        writer.close()


async def test_a_body_that_stops_arriving_is_cut_at_the_read_timeout(
    nats_server: NatsServer,
) -> None:
    """Headers promise 100 bytes, 10 arrive: 408 and closed at the read timeout."""
    limits = HttpLimits(header_timeout_s=30.0, keepalive_timeout_s=30.0, read_timeout_s=1.0)
    async with front_with(nats_server, limits) as front:
        reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
        writer.write(raw_post(b'{"jsonrpc"', length=100))
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 1.0 + MARGIN_S + 1)
        assert time.monotonic() - started < 1.0 + MARGIN_S
        assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:64]
        assert front.counts.closed["read_timeout"] == 1
        writer.close()


async def test_a_client_gone_mid_body_is_counted_not_logged_as_an_error(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten clients drop their POST half-way: ten counted, no ERROR record, no traceback."""
    caplog.set_level(logging.DEBUG)
    limits = HttpLimits(header_timeout_s=30.0, keepalive_timeout_s=30.0, read_timeout_s=30.0)
    async with front_with(nats_server, limits) as front:
        for _ in range(10):
            _, writer = await asyncio.open_connection("127.0.0.1", front.port)
            writer.write(raw_post(b'{"jsonrpc":"2.0"', length=1000))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await writer.wait_closed()
        for _ in range(100):  # bounded poll: the server notices each close on its own
            if front.counts.client_disconnected >= 10:
                break
            await asyncio.sleep(0.05)
        assert front.counts.client_disconnected == 10
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


async def test_more_idle_connections_than_the_cap_do_not_stop_new_clients(
    nats_server: NatsServer,
) -> None:
    """60 idle connections against a cap of 20: 10 valid POSTs on new connections get 200."""
    limits = HttpLimits(max_connections=20, header_timeout_s=60.0, keepalive_timeout_s=60.0)
    async with front_with(nats_server, limits) as front:
        idle = [await asyncio.open_connection("127.0.0.1", front.port) for _ in range(60)]
        try:
            await asyncio.sleep(0.2)
            statuses = []
            for n in range(10):
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(f"http://127.0.0.1:{front.port}/", data=rpc_body(f"c-{n}")) as r,
                ):
                    statuses.append(r.status)
            assert statuses == [200] * 10
            assert front.counts.peak_connections <= 20
            assert front.counts.closed["evicted_at_capacity"] >= 40
        finally:
            for _, writer in idle:
                writer.close()


async def test_at_the_cap_with_every_connection_serving_a_new_one_is_closed_not_queued(
    nats_server: NatsServer,
) -> None:
    """Cap 2, both connections mid-request: a third is closed at once; the two are answered."""
    limits = HttpLimits(max_connections=2, header_timeout_s=30.0, keepalive_timeout_s=30.0)
    async with front_with(nats_server, limits, delay_s=1.0) as front:
        busy = [await asyncio.open_connection("127.0.0.1", front.port) for _ in range(2)]
        for n, (_, writer) in enumerate(busy):
            writer.write(raw_post(rpc_body(f"busy-{n}")))
        await asyncio.sleep(0.3)  # both requests are being served (the nodes answer at 1 s)
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", front.port)
        assert await closed_within(extra_reader, 2.0) < 2.0
        assert front.counts.closed["over_capacity"] == 1
        for reader, _ in busy:
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200"), status
        for _, writer in [*busy, (extra_reader, extra_writer)]:
            writer.close()


FD_LIMIT = 256


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def test_a_gateway_at_a_low_fd_limit_serves_new_clients_while_more_are_held_idle(
    nats_server: NatsServer,
) -> None:
    """`relay gateway` at 256 descriptors, 300 idle connections held: 20 new requests get 200."""
    don = unique_don()
    port = free_port()
    cmd = [
        sys.executable, "-m", "workers.cli", "gateway", "--nats", nats_server.url,
        "--don", don, "--members", ",".join(MEMBERS), "--http", f"127.0.0.1:{port}",
        "--header-timeout", "60", "--keepalive-timeout", "60",
        "--global-rate", "100000rps:100000", "--node-rate", "100000rps:100000",
    ]  # fmt: skip
    async with fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())):
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_low_fd_limit,  # only setrlimit, before exec
            env={**os.environ, "RELAY_LOG_FORMAT": "text"},
        )
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        drain: asyncio.Task[bytes] | None = None
        try:
            assert proc.stderr is not None
            ready_line = b""
            async with asyncio.timeout(20):
                while b"at most" not in ready_line:
                    ready_line = await proc.stderr.readline()
                    assert ready_line, "the gateway exited before listening"
            assert f"file-descriptor limit {FD_LIMIT}".encode() in ready_line, ready_line
            # Keep reading its log: a full pipe would block the gateway on its next log line.
            drain = asyncio.create_task(proc.stderr.read())
            for _ in range(300):
                with contextlib.suppress(OSError):
                    idle.append(await asyncio.open_connection("127.0.0.1", port))
            assert len(idle) == 300
            statuses = []
            async with asyncio.timeout(30):
                for n in range(20):
                    async with (
                        aiohttp.ClientSession() as session,
                        session.post(f"http://127.0.0.1:{port}/", data=rpc_body(f"fd-{n}")) as r,
                    ):
                        statuses.append(r.status)
            assert statuses == [200] * 20
        finally:
            for _, writer in idle:
                writer.close()
            if proc.returncode is None:
                proc.terminate()  # by its handle, i.e. its PID
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if drain is not None:
                log_text = await drain
                assert b"Traceback" not in log_text, log_text[-2000:]
