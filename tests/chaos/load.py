"""Open-loop load against the node's rpc subject, counted per request, and the figures' report.

Open loop: requests leave at a fixed rate whatever the answers do, as an enclave fleet's would,
so a fault shows as errors or losses, not as a slower sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from schemas import rpc, subjects
from tests.chaos.cluster import BUDGET_S, DON, MARGIN_S, NODE


@dataclass
class Figures:
    """What happened to every request of one run. `spec_error`: the spec's answer to a valid
    request under a fault (-32603 "internal error", or a capability's `{"error": ...}` result);
    `lost`: no answer at all within the budget and margin; `wrong`: any other answer; `late`:
    answered after budget + margin."""

    sent: int = 0
    correct: int = 0
    spec_error: int = 0
    no_responders: int = 0
    lost: int = 0
    wrong: int = 0
    late: int = 0
    latencies_s: list[float] = field(default_factory=list)
    wrong_samples: list[str] = field(default_factory=list)
    in_flight: int = 0

    @property
    def answered(self) -> int:
        return self.correct + self.spec_error + self.wrong

    def median_ms(self) -> float:
        ordered = sorted(self.latencies_s)
        return round(ordered[len(ordered) // 2] * 1000, 1) if ordered else 0.0

    def max_ms(self) -> float:
        return round(max(self.latencies_s, default=0.0) * 1000, 1)

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "correct": self.correct,
            "spec_error": self.spec_error,
            "no_responders": self.no_responders,
            "lost": self.lost,
            "wrong": self.wrong,
            "late": self.late,
            "median_ms": self.median_ms(),
            "max_ms": self.max_ms(),
        }


Check = Callable[[str, dict[str, Any]], bool]
"""Whether a success answer is the right one for this request id."""
Make = Callable[[str], tuple[bytes, Check]]
"""A request id in, the request bytes and the check of its answer out."""


async def _one(
    nc: Client,
    raw: bytes,
    request_id: str,
    check: Callable[[str, dict[str, Any]], bool],
    figures: Figures,
) -> None:
    started = time.monotonic()
    figures.in_flight += 1
    try:
        reply = await nc.request(subjects.rpc(DON, NODE), raw, timeout=BUDGET_S + MARGIN_S + 2.0)
    except NoRespondersError:
        figures.no_responders += 1
        return
    except (NatsTimeout, TimeoutError):
        figures.lost += 1
        return
    except Exception as exc:  # a connection lost under the request (a server crash)
        figures.lost += 1
        figures.wrong_samples.append(f"{request_id}: {exc!r}"[:200])
        return
    finally:
        figures.in_flight -= 1
    took = time.monotonic() - started
    figures.latencies_s.append(took)
    if took > BUDGET_S + MARGIN_S:
        figures.late += 1
    body = json.loads(reply.data)
    error = body.get("error")
    if error is None and check(request_id, body):
        figures.correct += 1
    elif error == {"code": rpc.ErrInternal, "message": rpc.INTERNAL_ERROR_MESSAGE}:
        figures.spec_error += 1
    elif error is None and list(body.get("result") or {}) == ["error"]:
        # PROTOCOL 2.4: a capability call that failed (its DON died holding it and the call
        # timed out) is a success envelope whose result carries the capability's error.
        figures.spec_error += 1
    else:
        figures.wrong += 1
        figures.wrong_samples.append(reply.data[:200].decode(errors="replace"))


async def open_loop(
    nc: Client,
    make: Make,
    *,
    rate: float,
    duration_s: float,
    figures: Figures | None = None,
    prefix: str = "r",
) -> Figures:
    """Send `rate` requests a second for `duration_s` (open loop: a slow answer does not slow
    the sending), then wait for every answer (each bounded by budget + margin + 2 s)."""
    figures = figures if figures is not None else Figures()
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    count = int(rate * duration_s)
    for i in range(count):
        at = started + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        request_id = f"{prefix}-{i}"
        raw, check = make(request_id)
        figures.sent += 1
        tasks.append(asyncio.create_task(_one(nc, raw, request_id, check, figures)))
    await asyncio.gather(*tasks)
    return figures


def report(name: str, figures: Figures, **extra: Any) -> dict[str, Any]:
    """Print one run's figures (pytest -s or -rA shows them) and append them to
    $RELAY_CHAOS_REPORT (JSON lines) when set: docs/reliability.md quotes such a run."""
    line = {"test": name, **figures.summary(), **extra}
    print(json.dumps(line))
    target = os.environ.get("RELAY_CHAOS_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(line) + "\n")
    return line


async def until(
    probe: Callable[[], Awaitable[bool]], timeout_s: float, every_s: float = 0.2
) -> float:
    """Poll `probe` until it is true (bounded); the seconds it took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if await probe():
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s}s")
        await asyncio.sleep(every_s)
