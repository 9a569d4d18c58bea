"""Token buckets and the `<rate>rps:<burst>` format of the gateway's limits (PROTOCOL 5.3)."""

from __future__ import annotations

import pytest

from workers.gateway.ratelimit import RateLimit, RateLimitSpecError, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate", "burst"),
    [
        ("50rps:10", 50.0, 10),
        ("10rps:10", 10.0, 10),
        ("0.001rps:1", 0.001, 1),
        (" 5rps:0 ", 5.0, 0),
    ],
)
def test_limits_parse_from_the_cre_settings_format(text: str, rate: float, burst: int) -> None:
    """The defaults and fractional rates parse into rate and burst."""
    assert RateLimit.parse(text) == RateLimit(rate=rate, burst=burst)


@pytest.mark.parametrize("text", ["50", "50rps", "rps:10", "-1rps:2", "1rps:1.5", "1rpm:1", ""])
def test_a_malformed_limit_is_rejected_with_the_expected_shape(text: str) -> None:
    """Anything but `<rate>rps:<burst>` raises an error that shows the right format."""
    with pytest.raises(RateLimitSpecError, match="50rps:10"):
        RateLimit.parse(text)


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    """Burst 3 at 2 rps: three at once, then one more every half second."""
    clock = Clock()
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert bucket.allow()
    assert not bucket.allow()
    clock.now += 100
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_a_clock_stepping_back_mints_no_tokens() -> None:
    """Time going backwards neither adds nor removes tokens."""
    clock = Clock()
    bucket = TokenBucket(RateLimit(rate=1.0, burst=1), clock)
    assert bucket.allow()
    clock.now -= 50
    assert not bucket.allow()
    clock.now += 1
    assert bucket.allow()


def test_a_zero_burst_never_allows() -> None:
    """Burst 0 means no response is ever let through."""
    bucket = TokenBucket(RateLimit(rate=100.0, burst=0), Clock())
    assert not bucket.allow()


@pytest.mark.parametrize("text", ["50rps:10", "1000000rps:1000000", "0.5rps:1", "12.25rps:3"])
def test_a_limit_prints_as_text_that_parses_back_to_it(text: str) -> None:
    """str() of a limit is fixed-point (never 1e+06), so it can be handed on as a flag."""
    limit = RateLimit.parse(text)
    assert str(limit) == text
    assert RateLimit.parse(str(limit)) == limit
