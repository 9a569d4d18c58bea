"""`relay bench pipeline` end to end: a short real run, every process it started stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workers.bench.pipeline import PipelineSettings, run


def test_a_short_json_run_reports_the_issue_keys_from_real_answers() -> None:
    """Throughput, latency, the echo floor and the targets come from requests that all succeeded."""
    argv = ["bench", "pipeline", "--json", "--requests", "90", "--seconds", "0.2"]
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli", *argv, "--in-flight", "8", "--latency-rounds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("throughput_rps", "p50_ms", "p99_ms", "echo_p50_ms", "verify_warm_ms"):
        assert report[key] > 0, key
    assert report["p99_ms"] >= report["p50_ms"]
    assert report["latency_samples"] >= 50
    assert len(report["throughput_rounds_rps"]) == 3
    rounds = report["latency_rounds"]
    assert len(rounds) == 2
    for r in rounds:
        floor = r["echo_p50_ms"] + r["verify_warm_ms"]
        assert r["p50_over_floor"] == pytest.approx(r["p50_ms"] / floor, rel=2e-3)
    # Two rounds: the reported p50 and ratio are their medians (the mean of the two).
    assert report["p50_ms"] == pytest.approx(sum(r["p50_ms"] for r in rounds) / 2, abs=0.002)
    assert report["p50_over_floor"] == pytest.approx(
        sum(r["p50_over_floor"] for r in rounds) / 2, abs=0.002
    )
    assert report["p99_ms"] >= min(r["p99_ms"] for r in rounds)
    # A node request crosses four request/reply hops and a verification: it cannot beat one echo.
    assert report["p50_ms"] > report["echo_p50_ms"]
    assert report["echo_throughput_rps"] > report["throughput_rps"]
    cpu = report["cpu_us_per_request"]
    assert {"nats-server", "ingress", "verifier", "dispatch-secrets", "vault"} <= set(cpu)
    # Each request is verified once: a P-384 signature alone is hundreds of µs of CPU.
    assert cpu["verifier"] > 200
    assert report["cpu_us_per_request_total"] >= sum(cpu.values()) - len(cpu)
    assert set(report["targets"]) == {
        "throughput_at_least_700_rps",
        "p99_at_most_15_ms_at_half_rate",
        "p50_at_most_3x_echo_plus_verify",
    }


def test_the_run_leaves_no_process_behind() -> None:
    """After run() returns, no worker or nats-server it started is still alive."""
    before = _children_of_tests()
    run(PipelineSettings(requests=30, seconds=0.1, in_flight=4, warmup=10, echo_samples=50))
    assert _children_of_tests() == before


def _children_of_tests() -> set[int]:
    me = str(os.getpid())
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            children.add(int(entry))
    return children


def test_a_short_current_run_reports_the_signed_node_beside_n1() -> None:
    """--current: the current node's figures come from signed answers in the same rounds."""
    argv = ["bench", "pipeline", "--json", "--current", "--requests", "60", "--seconds", "0.2"]
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli", *argv, "--in-flight", "8", "--latency-rounds", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    cur = report["current"]
    assert cur["throughput_rps"] > 0
    assert len(cur["throughput_rounds_rps"]) == 3
    assert cur["p99_ms"] >= cur["p50_ms"] > 0
    assert cur["latency_samples"] == report["latency_samples"]
    assert cur["throughput_over_n1"] == pytest.approx(
        cur["throughput_rps"] / report["throughput_rps"], rel=1e-3
    )
    # The current node's own ingress signs and authorises: it works more than n1's.
    assert {"ingress", "verifier", "nats-server"} <= set(cur["cpu_us_per_request"])
    assert cur["step_costs_us"]["sign_secrets_us"] > 0
    assert cur["step_costs_us"]["authorize_f_plus_1_us"] > 0
    # The n1 node's figures keep their own processes only.
    assert not any(name.startswith("current ") for name in report["cpu_us_per_request"])
