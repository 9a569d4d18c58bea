"""When `relay up` restarts a dead actor, and when it gives up: pure rules, the clock injected.

A dead actor is restarted after a backoff that doubles with each death in a row (from
`initial_backoff_s` up to `max_backoff_s`) and starts over once the actor has stayed up for
`window_s`. An actor that dies `max_deaths` times within `window_s` is not restarted: it would
only die again (a bad setting, a port taken), and `relay up` exits non-zero so that whatever runs
it (an operator, systemd) sees the failure instead of a node that silently serves nothing.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from workers.runtime.settings import require_seconds


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_deaths: int = 5
    window_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff_s", "max_backoff_s", "window_s"):
            require_seconds(name, getattr(self, name))
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must be at least initial_backoff_s")
        if isinstance(self.max_deaths, bool) or not (
            isinstance(self.max_deaths, int) and self.max_deaths >= 1
        ):
            raise ValueError(f"max deaths must be an integer >= 1, got {self.max_deaths!r}")


@dataclass
class GiveUp:
    """The actor keeps dying: `deaths` within the policy's window."""

    deaths: int
    window_s: float


@dataclass
class Restart:
    """Restart the actor after `delay_s`; `deaths` within the window so far."""

    delay_s: float
    deaths: int


@dataclass
class ActorDeaths:
    """The deaths of one actor (times on the supervisor's monotonic clock)."""

    policy: RestartPolicy
    times: collections.deque[float] = field(default_factory=collections.deque)
    in_a_row: int = 0

    def died(self, *, now: float, started_at: float) -> Restart | GiveUp:
        """Record a death at `now` of the process started at `started_at`."""
        window = self.policy.window_s
        while self.times and now - self.times[0] > window:
            self.times.popleft()
        self.times.append(now)
        # Up for a whole window: this death is news, not the same failure again.
        self.in_a_row = 1 if now - started_at >= window else self.in_a_row + 1
        if len(self.times) >= self.policy.max_deaths:
            return GiveUp(deaths=len(self.times), window_s=window)
        delay = self.policy.initial_backoff_s * 2 ** (self.in_a_row - 1)
        return Restart(delay_s=min(delay, self.policy.max_backoff_s), deaths=len(self.times))
