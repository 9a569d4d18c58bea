"""Token buckets for the gateway's node-response rate limits (PROTOCOL 5.3).

Limits are written as upstream's CRE settings write them: `"<rate>rps:<burst>"`, for example the
defaults `"50rps:10"` (global) and `"10rps:10"` (per node). The clock is injected so tests can
drive refills without sleeping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

_LIMIT = re.compile(r"(?P<rate>\d+(?:\.\d+)?)rps:(?P<burst>\d+)")


class RateLimitSpecError(ValueError):
    """A rate limit string is not `<rate>rps:<burst>`."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A sustained rate (tokens per second) and a burst (bucket size)."""

    rate: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _LIMIT.fullmatch(text.strip())
        if match is None:
            raise RateLimitSpecError(
                f"rate limit {text!r} must look like '<rate>rps:<burst>', e.g. '50rps:10'"
            )
        rate = float(match["rate"])
        if not math.isfinite(rate):
            raise RateLimitSpecError(f"rate limit {text!r} has a rate that is not finite")
        return cls(rate=rate, burst=int(match["burst"]))

    def __str__(self) -> str:
        # Fixed-point, never `1e+06`: the text must parse back (it is passed on as a flag).
        rate = f"{self.rate:.6f}".rstrip("0").rstrip(".")
        return f"{rate}rps:{self.burst}"


class TokenBucket:
    """A bucket that starts full, refills continuously at `rate` and holds at most `burst` tokens."""

    __slots__ = ("_clock", "_last", "_limit", "_tokens")

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._last = clock()

    def allow(self) -> bool:
        """Take one token if there is one; never blocks."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock that steps back must not mint tokens
        self._last = now
        self._tokens = min(float(self._limit.burst), self._tokens + elapsed * self._limit.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
