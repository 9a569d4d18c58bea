"""Capability execution is not idempotent: one logical call runs once (PROTOCOL 7.9).

A call's logical key is (workflow_id, execution_id, reference_id, capability_id). While the
first execution runs, duplicates wait for its outcome; after it finishes, its outcome is served
to retries for `ttl_s` (10 minutes by default, like upstream's response cache). Each part of the
key is length-prefixed, so a `/` inside a part cannot make two different calls collide (upstream
joins them with `/` unescaped).

Memory is bounded by count and by bytes: the parts of a key come from the client (each up to the
request's size), so keys are kept as their SHA-256, and remembered outcomes as counted by
`size_of` stay under `max_bytes`; past either bound the oldest finished outcome is forgotten
first (a retry of that call after it would run it again, as after the TTL).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def logical_key(workflow_id: str, execution_id: str, reference_id: str, capability_id: str) -> str:
    parts = (workflow_id, execution_id, reference_id, capability_id)
    return "call-capability/" + "/".join(f"{len(p)}:{p}" for p in parts)


class Deduplicator(Generic[T]):
    """Run `work` once per key; concurrent and later duplicates get the same outcome."""

    def __init__(
        self,
        *,
        ttl_s: float = 600.0,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 2**20,
        size_of: Callable[[T], int] = lambda _: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._clock = clock
        self._done: OrderedDict[bytes, tuple[float, T, int]] = OrderedDict()
        self._bytes = 0
        self._running: dict[bytes, asyncio.Future[T]] = {}
        self.executions = 0

    @property
    def remembered_bytes(self) -> int:
        return self._bytes

    def _expire(self, now: float) -> None:
        while self._done:
            key, (stored_at, _, size) = next(iter(self._done.items()))
            fresh = now - stored_at <= self._ttl_s
            if fresh and len(self._done) <= self._max and self._bytes <= self._max_bytes:
                break
            self._done.pop(key)
            self._bytes -= size

    async def run(
        self, key: str, work: Callable[[], Awaitable[T]], *, deadline: float | None = None
    ) -> T:
        """`work()`'s outcome for `key`, running it only if no earlier call did (`deadline` is
        for stores that may have to wait for another process; this one never waits on others)."""
        slot = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        self._expire(now)
        hit = self._done.get(slot)
        if hit is not None:
            return hit[1]
        running = self._running.get(slot)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[slot] = future
        try:
            self.executions += 1
            outcome = await work()
        except BaseException as exc:
            # Nothing to remember: a retry may try again (the call may not have happened).
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it, nobody else must
            raise
        finally:
            self._running.pop(slot, None)
        future.set_result(outcome)
        size = 32 + self._size_of(outcome)
        self._done[slot] = (self._clock(), outcome, size)
        self._bytes += size
        self._expire(self._clock())
        return outcome
