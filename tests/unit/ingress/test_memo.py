"""The N4 response memo in one process: hits, in-flight waiters, errors not kept, bounds, keys."""

from __future__ import annotations

import asyncio
import time

import pytest

from workers.ingress.memo import (
    MemoNoResult,
    MemoWaitTimeout,
    ResponseMemo,
    capability_key,
    secrets_key,
)


class Counting:
    """Work that counts its runs, answers `value` after `delay_s`, or raises `error`."""

    def __init__(self, value: bytes = b'{"signed":1}', delay_s: float = 0.0) -> None:
        self.value = value
        self.delay_s = delay_s
        self.calls = 0
        self.error: Exception | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


def later(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_a_retry_of_a_served_key_gets_the_stored_result_without_running() -> None:
    """The second request of a key is answered from the memo: the work ran once."""
    memo, work = ResponseMemo(), Counting()
    assert await memo.run("k", work, deadline=later()) == work.value
    assert await memo.run("k", work, deadline=later()) == work.value
    assert work.calls == 1


async def test_concurrent_requests_of_one_key_wait_for_the_first() -> None:
    """Requests arriving while the first runs get its result; the work ran once."""
    memo, work = ResponseMemo(), Counting(delay_s=0.1)
    results = await asyncio.gather(*(memo.run("k", work, deadline=later()) for _ in range(5)))
    assert results == [work.value] * 5
    assert work.calls == 1


async def test_waiters_get_the_owners_error_and_the_error_is_not_remembered() -> None:
    """A failure reaches every waiter as the same exception; a later retry runs again."""
    memo, work = ResponseMemo(), Counting(delay_s=0.1)
    work.error = ValueError("vault error for secret main/k: key does not exist")
    outcomes = await asyncio.gather(
        *(memo.run("k", work, deadline=later()) for _ in range(3)), return_exceptions=True
    )
    assert all(o is work.error for o in outcomes)
    assert work.calls == 1
    work.error = None
    assert await memo.run("k", work, deadline=later()) == work.value
    assert work.calls == 2


async def test_a_waiter_past_its_own_deadline_times_out_and_the_owner_still_finishes() -> None:
    """A waiter with a short deadline gets MemoWaitTimeout; the owner's result is kept."""
    memo, work = ResponseMemo(), Counting(delay_s=0.4)
    owner = asyncio.create_task(memo.run("k", work, deadline=later()))
    await asyncio.sleep(0.05)
    with pytest.raises(MemoWaitTimeout):
        await memo.run("k", work, deadline=later(0.05))
    assert await owner == work.value
    assert await memo.run("k", work, deadline=later()) == work.value
    assert work.calls == 1


async def test_a_waiter_of_a_cancelled_owner_gets_no_result_rather_than_cancellation() -> None:
    """The owner cancelled (its client went away): the waiter ends with MemoNoResult."""
    memo, work = ResponseMemo(), Counting(delay_s=1.0)
    owner = asyncio.create_task(memo.run("k", work, deadline=later()))
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(memo.run("k", work, deadline=later()))
    await asyncio.sleep(0.05)
    owner.cancel()
    with pytest.raises(MemoNoResult):
        await waiter
    assert memo.get("k") is None


async def test_results_expire_after_the_ttl() -> None:
    """Past ttl_s a key is served afresh."""
    now = [0.0]
    memo, work = ResponseMemo(ttl_s=10.0, clock=lambda: now[0]), Counting()
    await memo.run("k", work, deadline=100.0)
    now[0] = 10.5
    await memo.run("k", work, deadline=100.0)
    assert work.calls == 2


async def test_the_memo_is_bounded_in_entries_and_bytes_oldest_first() -> None:
    """Past max_entries or max_bytes the oldest results are forgotten first."""
    memo = ResponseMemo(max_entries=3, max_bytes=10_000)
    for i in range(5):
        await memo.run(f"k{i}", Counting(value=b"x" * 10), deadline=later())
    assert len(memo) == 3
    assert memo.get("k0") is None
    assert memo.get("k1") is None
    assert memo.get("k4") == b"x" * 10
    by_bytes = ResponseMemo(max_bytes=3 * (32 + 1000))
    for i in range(5):
        await by_bytes.run(f"k{i}", Counting(value=b"y" * 1000), deadline=later())
    assert len(by_bytes) == 3
    assert by_bytes.remembered_bytes <= 3 * (32 + 1000)
    assert by_bytes.get("k1") is None
    assert by_bytes.get("k2") is not None


def test_keys_cannot_collide_through_a_slash_inside_a_part() -> None:
    """("wf","1/x","y","c") and ("wf","1","x/y","c") collide upstream, not here."""
    assert capability_key("wf", "1/x", "y", "c") != capability_key("wf", "1", "x/y", "c")
    assert capability_key("wf", "e", "r", "c").startswith("call-capability/")
    assert secrets_key("wf", "e", b"\x01" * 32).startswith("get-secrets/")
    assert secrets_key("wf", "e", b"\x01" * 32) != secrets_key("wf", "e", b"\x02" * 32)


async def test_a_stored_result_the_check_refuses_is_served_afresh_and_replaced() -> None:
    """`valid` false on a hit: the work runs again and its result replaces the stored one."""
    memo = ResponseMemo()
    await memo.run("k", Counting(value=b"old"), deadline=later())
    fresh = Counting(value=b"new")
    assert await memo.run("k", fresh, deadline=later(), valid=lambda v: v != b"old") == b"new"
    assert fresh.calls == 1
    assert memo.get("k") == b"new"
    assert await memo.run("k", fresh, deadline=later(), valid=lambda v: v == b"new") == b"new"
    assert fresh.calls == 1
