"""HTTP load for `relay bench don`: requests POSTed to the gateway's front, every answer checked.

A wrong answer, an HTTP error or a timeout is counted by kind (`Outcomes.errors`), never timed as
fast; only correct answers have a latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from workers.bench.pipeline import BenchFailed, check_answer

HTTP_TIMEOUT_S = 20.0


@dataclass
class Outcomes:
    """What the DON answered: latencies of correct answers, and each kind of error counted."""

    latencies: list[float]
    errors: dict[str, int]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def post(session: aiohttp.ClientSession, url: str, body: bytes, outcomes: Outcomes) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body) as resp:
            answer = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = type(exc).__name__
        outcomes.errors[kind] = outcomes.errors.get(kind, 0) + 1
        return
    elapsed = time.perf_counter() - started
    try:
        if status != 200:
            raise BenchFailed(f"HTTP {status}")
        check_answer(body, answer)
    except BenchFailed:
        kind = error_kind(status, answer)
        outcomes.errors[kind] = outcomes.errors.get(kind, 0) + 1
        return
    outcomes.latencies.append(elapsed)


def error_kind(status: int, answer: bytes) -> str:
    """A short name for a wrong answer: the HTTP status and the gateway's message, trimmed."""
    try:
        message = str(json.loads(answer)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = "unexpected body"
    # "request expired: got 1/2 responses" -> "request expired" (one bucket per kind).
    return f"HTTP {status}: {message.split(':')[0][:60]}"


async def http_saturate(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], in_flight: int
) -> tuple[float, Outcomes]:
    """Correct answers per second through the gateway with `in_flight` outstanding (closed
    loop), and the outcome of each request."""
    pending = list(reversed(bodies))
    outcomes = Outcomes(latencies=[], errors={})

    async def worker() -> None:
        while pending:
            await post(session, url, pending.pop(), outcomes)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(bodies)))))
    # Correct answers per second: a fast error is not throughput.
    return len(outcomes.latencies) / (time.perf_counter() - started), outcomes


async def http_open_loop(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], rate: float
) -> Outcomes:
    """Requests sent on a fixed schedule of `rate` per second, whether or not earlier ones are
    answered; the outcome of each."""
    outcomes = Outcomes(latencies=[], errors={})
    interval = 1.0 / rate
    start = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(session, url, body, outcomes)))
    await asyncio.gather(*tasks)
    outcomes.latencies.sort()
    return outcomes


def new_session() -> aiohttp.ClientSession:
    # No cap on connections (an open loop must never queue in the client); kept alive, so the
    # client's own cost stays small.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S),
    )
