"""The registry's initial load survives nats-py sending its "initial values done" marker early."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
import pytest
from nats.js.kv import KeyValue

from workers.registry.actor import RegistryCache


class ScriptedWatcher:
    """Plays back watch updates in a given order; then times out like nats-py's watcher."""

    def __init__(self, script: Sequence[KeyValue.Entry | None]) -> None:
        self._script = list(script)

    async def updates(self, timeout: float) -> KeyValue.Entry | None:  # noqa: ASYNC109 - nats-py's signature
        if self._script:
            await asyncio.sleep(0)
            return self._script.pop(0)
        await asyncio.sleep(timeout)
        raise nats.errors.TimeoutError


def entry(key: str, revision: int, value: bytes = b"v", op: str | None = None) -> KeyValue.Entry:
    return KeyValue.Entry(
        bucket="relay_registry",
        key=key,
        value=value,
        revision=revision,
        delta=None,
        created=None,
        operation=op,
    )


async def _load(
    script: Sequence[KeyValue.Entry | None], last_seq: int
) -> tuple[dict[str, bytes], int]:
    cache = RegistryCache(request_timeout_s=0.2)
    return await cache._initial(ScriptedWatcher(script), last_seq)  # type: ignore[arg-type]


async def test_values_after_an_early_marker_are_still_part_of_the_first_view() -> None:
    """The race seen on a busy machine: None first, then every value; none is lost."""
    script = [None, entry("dons.1", 1), entry("dons.2", 2), entry("nodes.a", 3)]
    assert await _load(script, last_seq=3) == (
        {"dons.1": b"v", "dons.2": b"v", "nodes.a": b"v"},
        3,
    )


async def test_the_ordinary_order_ends_at_the_marker() -> None:
    """Values, then the marker: done at once, later updates are the follower's business."""
    script = [entry("dons.1", 1), entry("dons.2", 2), None, entry("dons.3", 9)]
    assert await _load(script, last_seq=2) == ({"dons.1": b"v", "dons.2": b"v"}, 2)


async def test_a_deleted_key_counts_toward_the_end_and_is_not_in_the_view() -> None:
    """The stream's last message may be a delete marker: it ends the load and drops the key."""
    script = [None, entry("dons.1", 1), entry("dons.2", 3, b"", op="DEL")]
    assert await _load(script, last_seq=3) == ({"dons.1": b"v"}, 3)


async def test_a_sequence_that_never_comes_ends_the_wait_in_bounded_time() -> None:
    """An expired last message: the load gives up waiting after one request timeout."""
    started = asyncio.get_running_loop().time()
    assert await _load([entry("dons.1", 1), None], last_seq=5) == ({"dons.1": b"v"}, 1)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_no_marker_at_all_is_a_lost_watch() -> None:
    """Nothing arrives: the watch is reported (and rebuilt by the caller), never taken as empty."""
    cache = RegistryCache(request_timeout_s=0.01)
    with pytest.raises(nats.errors.TimeoutError):
        await cache._initial(ScriptedWatcher([]), 0)  # type: ignore[arg-type]
