"""A soak: steady valid load (capability calls and secrets) for RELAY_CHAOS_SOAK_S seconds (20 in
CI; a campaign runs 120 or more), every answer correct, and each worker's resident memory bounded.
"""

from __future__ import annotations

import os

import pytest
from nats.aio.client import Client

from tests.chaos.cluster import Cluster, Portal
from tests.chaos.load import Figures, open_loop, report
from tests.chaos.test_kill import mixed

pytestmark = pytest.mark.usefixtures("node")  # each fault test starts from a whole node

SOAK_S = float(os.environ.get("RELAY_CHAOS_SOAK_S", "20") or "20")
RATE, WARMUP_S = 20.0, 3.0
RSS_GROWTH_BOUND_KIB = 16 * 1024
"""How much any one process may grow after warm-up. Python keeps freed memory in its arenas, so
flat means bounded by a constant, not zero. 20 s at 20 req/s catches a leak of about 40 KiB per
request; a campaign (RELAY_CHAOS_SOAK_S=600) catches one of about 1.4 KiB."""


@pytest.mark.timeout(SOAK_S + WARMUP_S + 120)
def test_a_soak_answers_every_request_correctly_with_flat_memory(
    portal: Portal, gateway_nc: Client, cluster: Cluster
) -> None:
    """Every request of the soak is answered correctly and no worker's RSS grows past the bound."""
    make = mixed(cluster)
    warm = portal.run(
        open_loop(gateway_nc, make, rate=RATE, duration_s=WARMUP_S, prefix="warm"), 120
    )
    assert warm.correct == warm.sent, warm.summary()
    before = {w.pid: (w.actor, w.rss_kib()) for w in cluster.workers}
    figures = portal.run(
        open_loop(gateway_nc, make, rate=RATE, duration_s=SOAK_S, figures=Figures(), prefix="soak"),
        SOAK_S + 120,
    )
    growth = {
        f"{actor}#{pid}": w.rss_kib() - rss
        for w in cluster.workers
        for pid, (actor, rss) in before.items()
        if w.pid == pid
    }
    report(
        "soak",
        figures,
        seconds=SOAK_S,
        rate=RATE,
        rss_growth_kib=growth,
        rss_after_kib={f"{w.actor}#{w.pid}": w.rss_kib() for w in cluster.workers},
    )
    assert len(growth) == len(before), "a worker died during the soak"
    assert figures.correct == figures.sent == int(RATE * SOAK_S), (
        figures.summary(),
        figures.wrong_samples,
    )
    assert figures.late == 0
    assert max(growth.values()) <= RSS_GROWTH_BOUND_KIB, growth
