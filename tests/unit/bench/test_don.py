"""`relay bench don`'s bookkeeping: CPU by role, the sizing run's refill wait, the gateway's log."""

from __future__ import annotations

from pathlib import Path

from workers.bench.don import Don, PacedSettings, _cpu_groups, _refill_s, node_names
from workers.gateway.ratelimit import RateLimit


def test_cpu_is_grouped_by_role_and_divided_per_request() -> None:
    """Every node's actors add up to one role; vault and echo to another; the rest by name."""
    spent = {
        "node-0/ingress": 1.0,
        "node-1/verifier": 2.0,
        "vault": 0.5,
        "echo": 0.5,
        "gateway": 0.25,
    }
    assert _cpu_groups(spent, 1000) == {
        "nodes (all actors)": 3000,
        "vault+echo": 1000,
        "gateway": 250,
    }


def test_the_sizing_run_waits_until_both_buckets_are_full_again_but_never_long() -> None:
    """The wait is the slower bucket's refill time (burst / rate), capped at 5 s."""
    slow = PacedSettings(
        rate_rps=40,
        count=1,
        node_rate=RateLimit(rate=10, burst=10),
        global_rate=RateLimit(rate=50, burst=10),
    )
    assert _refill_s(slow) == 1.0
    huge = PacedSettings(
        rate_rps=40,
        count=1,
        node_rate=RateLimit(rate=1, burst=100),
        global_rate=RateLimit(rate=1, burst=100),
    )
    assert _refill_s(huge) == 5.0


def test_nodes_are_named_as_the_registry_seed_names_them() -> None:
    """node-0 .. node-(N-1), the addresses the example registry uses."""
    assert node_names(4) == ("node-0", "node-1", "node-2", "node-3")


def test_a_gateway_that_exited_is_reported_with_its_last_log_line(tmp_path: Path) -> None:
    """The last line of the gateway's log is what a failed start shows; none, an empty string."""
    log = tmp_path / "gateway.log"
    don = Don(url="nats://x", http="http://x/", procs={}, members=("node-0",), log=log)
    assert don.gateway_said() == ""
    log.write_text('{"msg": "starting"}\n{"msg": "gateway failed: no NATS"}\n')
    assert don.gateway_said() == '{"msg": "gateway failed: no NATS"}'
