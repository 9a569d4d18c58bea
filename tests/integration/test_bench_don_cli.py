"""`relay bench don` end to end with tiny parameters: real processes, real answers, all stopped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_bench_pipeline_cli import _children_of_tests
from workers.bench.don import PacedSettings, paced
from workers.gateway.ratelimit import RateLimit


def test_a_short_json_run_reports_the_issue_keys_from_correct_answers() -> None:
    """DON and node saturation, their ratio, latency at half rate and zero errors."""
    argv = ["bench", "don", "--json", "--requests", "40", "--seconds", "0.5"]
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli", *argv, "--in-flight", "8", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("saturation_rps", "p50_ms", "p99_ms", "node_saturation_rps", "ratio"):
        assert report[key] > 0, key
    assert report["errors"] == 0
    assert report["error_kinds"] == {}
    assert report["nodes"] == 4
    assert report["f"] == 1
    assert report["p99_ms"] >= report["p50_ms"]
    assert len(report["saturation_rounds_rps"]) == 2
    assert len(report["node_saturation_rounds_rps"]) == 2
    ratio = report["saturation_rps"] / report["node_saturation_rps"]
    assert report["ratio"] == pytest.approx(ratio, rel=2e-3)
    # Two saturation rounds of 20 requests each, 30 one at a time, the paced run: all counted.
    assert report["requests"] == 40 + 30 + report["latency_samples"]
    # Through the DON a request waits for two nodes' pipelines and the gateway: never faster.
    assert report["sequential_p50_ms"] > report["node_sequential_p50_ms"] > 0
    # Each DON request is verified by four nodes: hundreds of µs of CPU each, in the nodes.
    cpu = report["cpu_us_per_request"]
    assert cpu["nodes (all actors)"] > cpu["gateway"]
    assert set(report["targets"]) == {
        "every_answer_correct",
        "saturation_at_least_0.2x_one_node",
        "p99_at_most_50_ms_at_half_rate",
    }
    assert report["targets"]["every_answer_correct"] is True


def test_limits_below_the_request_rate_lose_answers_and_the_run_leaves_nothing_behind() -> None:
    """At 20 req/s through 5rps per node (burst 2), requests expire: counted as errors, not
    timed; after the run no process it started is alive."""
    before = _children_of_tests()
    report = paced(
        PacedSettings(
            rate_rps=20,
            count=40,
            node_rate=RateLimit(rate=5, burst=2),
            global_rate=RateLimit(rate=1000, burst=1000),
            request_timeout_s=2.0,
        )
    )
    assert _children_of_tests() == before
    assert report["sent"] == 40
    assert report["answered"] + report["errors"] == 40
    assert report["errors"] > 0
    assert set(report["error_kinds"]) == {"HTTP 504: request expired"}
