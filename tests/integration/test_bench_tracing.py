"""`relay bench tracing` runs end to end and reports both modes (the numbers are the bench's)."""

from __future__ import annotations

from workers.bench.tracing import TracingSettings, render, run
from workers.runtime import tracing


def test_the_tracing_bench_reports_off_and_on_and_leaves_tracing_off() -> None:
    """One small round: every figure is positive, on costs more per hop than off, tracing is off after."""
    report = run(TracingSettings(rounds=1, calls=200, requests=20))
    for key in ("helpers_off_ns", "helpers_on_ns", "round_trip_off_us", "round_trip_on_us"):
        assert report[key] > 0, key
    # A span is tens of microseconds; the off path two function calls: no load hides that gap.
    assert report["helpers_on_ns"] > 10 * report["helpers_off_ns"]
    assert not tracing.enabled()
    assert "helpers off" in render(report)
