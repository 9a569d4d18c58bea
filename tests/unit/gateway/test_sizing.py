"""Gateway sizing: the recommended limits, the start-up warnings, and the handler agreeing with both."""

from __future__ import annotations

import json

import pytest

from workers.gateway import sizing
from workers.gateway.handler import (
    DonConfig,
    GatewayHandler,
    HandlerConfig,
    StaticMembership,
    UserRequest,
)
from workers.gateway.ratelimit import RateLimit

MEMBERS = ("n0", "n1", "n2", "n3")
DEFAULT_NODE, DEFAULT_GLOBAL = RateLimit(rate=10.0, burst=10), RateLimit(rate=50.0, burst=10)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Quiet:
    """A transport whose sends succeed; the test plays the nodes' answers itself."""

    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        return None


async def answered_fraction(
    node_rate: RateLimit, global_rate: RateLimit, rps: float, seconds: float = 10.0
) -> float:
    """Requests at `rps` for `seconds` (fake clock) through the real handler, every member
    answering each one at once and identically: the fraction that reached quorum."""
    clock = Clock()
    handler = GatewayHandler(
        membership=StaticMembership(DonConfig(name="d", f=1, members=MEMBERS)),
        sender=Quiet(),
        config=HandlerConfig(global_rate=global_rate, per_node_rate=node_rate),
        clock=clock,
    )
    count = int(rps * seconds)
    futures = []
    for i in range(count):
        clock.now = i / rps
        req_id = f"r{i}"
        raw = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "m", "params": {}}).encode()
        future = await handler.submit(UserRequest(id=req_id, method="m", raw=raw))
        futures.append(future)
        answer = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "m", "result": {"ok": 1}})
        for node in MEMBERS:
            handler.on_node_response(node, answer.encode())
    decided = sum(1 for f in futures if f.done())
    return decided / count


def test_the_recommendation_for_40_rps_through_4_nodes() -> None:
    """Twice the rate per node, N x the rate globally, a second of traffic as bursts."""
    want = sizing.recommended(40, members=4, f=1)
    assert want.node_rate == RateLimit(rate=80.0, burst=40)
    assert want.global_rate == RateLimit(rate=160.0, burst=160)


def test_small_rates_keep_upstreams_burst_of_ten() -> None:
    """A burst never drops below 10, so a low expected rate does not shrink it."""
    want = sizing.recommended(2, members=4, f=1)
    assert want.node_rate.burst == 10
    assert want.global_rate.burst == 10


def test_upstreams_defaults_cannot_carry_40_rps_and_both_limits_are_named() -> None:
    """The issue's case: 10rps per node and 50rps global, 40 req/s through 4 nodes."""
    problems = sizing.shortfalls(DEFAULT_NODE, DEFAULT_GLOBAL, members=4, f=1, expected_rps=40)
    assert len(problems) == 2
    assert "--node-rate 10rps:10 cannot carry 40 req/s" in problems[0]
    assert "set --node-rate 80rps:40" in problems[0]
    assert "--global-rate 50rps:10 cannot carry 40 req/s" in problems[1]
    assert "set --global-rate 160rps:160" in problems[1]


def test_the_recommended_limits_have_nothing_to_warn_about() -> None:
    """Limits set from recommended() pass their own check, for several DON sizes."""
    for members, f, rps in [(4, 1, 40), (7, 2, 300), (1, 0, 5), (10, 3, 0.5)]:
        want = sizing.recommended(rps, members=members, f=f)
        problems = sizing.shortfalls(
            want.node_rate, want.global_rate, members=members, f=f, expected_rps=rps
        )
        assert problems == [], (members, f, rps)


def test_limits_at_the_floor_carry_the_rate_but_are_warned_about_headroom() -> None:
    """node = R and global = (F+1) x R can carry R, so the warning says headroom, not cannot."""
    problems = sizing.shortfalls(
        RateLimit(rate=40, burst=40), RateLimit(rate=80, burst=80), members=4, f=1, expected_rps=40
    )
    assert len(problems) == 2
    assert all("leaves no headroom" in p for p in problems)


def test_what_the_limits_carry_is_the_tighter_of_the_two_floors() -> None:
    """min(node rate, global rate / (F+1))."""
    assert sizing.carried_rps(DEFAULT_NODE, DEFAULT_GLOBAL, f=1) == 10
    assert sizing.carried_rps(RateLimit(rate=100, burst=1), DEFAULT_GLOBAL, f=1) == 25


@pytest.mark.parametrize(("rps", "members", "f"), [(0, 4, 1), (float("nan"), 4, 1), (5, 4, 4)])
def test_an_impossible_rate_or_don_is_refused(rps: float, members: int, f: int) -> None:
    """No rate, nan, or F not below the member count: a ValueError, not a silent pass."""
    with pytest.raises(ValueError, match=r"expected rate|cannot have F"):
        sizing.recommended(rps, members=members, f=f)


async def test_the_handler_drops_what_the_issue_saw_with_upstreams_defaults() -> None:
    """At 40 req/s the default limits decide only a fraction of requests (the issue's 110/400)."""
    fraction = await answered_fraction(DEFAULT_NODE, DEFAULT_GLOBAL, rps=40)
    assert fraction < 0.5


async def test_the_handler_decides_every_request_with_the_recommended_limits() -> None:
    """The same load with recommended() limits: every request reaches quorum."""
    want = sizing.recommended(40, members=4, f=1)
    assert await answered_fraction(want.node_rate, want.global_rate, rps=40) == 1.0


async def test_the_handler_agrees_that_a_node_rate_under_the_request_rate_cannot_carry_it() -> None:
    """A per-node rate just below R (everything else generous) leaves requests undecided."""
    generous = RateLimit(rate=1e6, burst=1_000_000)
    assert await answered_fraction(RateLimit(rate=30, burst=10), generous, rps=40) < 1.0
    assert await answered_fraction(RateLimit(rate=40, burst=10), generous, rps=40) == 1.0
