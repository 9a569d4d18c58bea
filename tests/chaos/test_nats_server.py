"""kill -9 of nats-server under load, and its restart on the same ports and JetStream store.

Every actor and the client reconnect by themselves (no process is restarted). Requests in flight
at the crash, or sent while the server is down, may be lost: their reply subjects died with the
server. After the restart the node serves again within a bound, and a load sent then is answered
correctly, every request of it.
"""

from __future__ import annotations

import json
import time

import pytest
from nats.aio.client import Client

from schemas import subjects
from tests.chaos.cluster import DON, NODE, Cluster, Portal
from tests.chaos.load import Figures, open_loop, report, until
from tests.chaos.payloads import echo_is_correct, echo_request

pytestmark = pytest.mark.usefixtures("node")  # each fault test starts from a whole node

RATE, DURATION_S, CRASH_AT_S, DOWN_S = 20.0, 5.0, 1.5, 1.0
RECOVERY_BOUND_S = 20.0
"""How soon after the restart the node must serve again: reconnects every 0.5 s, the registry
watch is rebuilt within a second, a python actor may be slow on a loaded machine."""


def test_a_nats_server_crash_loses_at_most_the_requests_it_held_and_the_node_recovers(
    portal: Portal, gateway_nc: Client, cluster: Cluster
) -> None:
    """kill -9 of the server: no process dies, no answer is wrong, the lost requests are at most
    those in flight at the crash or sent during the outage, and after recovery none is lost."""
    make = lambda rid: (echo_request(cluster.chain, rid), echo_is_correct)  # noqa: E731
    figures = Figures()
    running = portal.start(
        open_loop(
            gateway_nc, make, rate=RATE, duration_s=DURATION_S, figures=figures, prefix="crash"
        )
    )
    time.sleep(CRASH_AT_S)
    in_flight, sent_before = figures.in_flight, figures.sent
    cluster.kill_server()
    time.sleep(DOWN_S)
    cluster.restart_server()
    # Sent from just before the kill until the server listened again.
    sent_during = figures.sent - sent_before

    async def serves() -> bool:
        raw = echo_request(cluster.chain, f"probe-{time.monotonic()}")
        reply = await gateway_nc.request(subjects.rpc(DON, NODE), raw, timeout=2.0)
        return echo_is_correct(json.loads(reply.data)["id"], json.loads(reply.data))

    recovered_s = portal.run(until(serves, RECOVERY_BOUND_S), RECOVERY_BOUND_S + 10)
    running.result(DURATION_S + 60)
    report(
        "nats-server-kill-9",
        figures,
        in_flight_at_crash=in_flight,
        sent_while_down=sent_during,
        down_s=DOWN_S,
        recovered_after_restart_s=round(recovered_s, 2),
    )
    assert all(worker.alive() for worker in cluster.workers)
    assert figures.wrong == 0, figures.wrong_samples
    assert figures.lost <= in_flight + sent_during, (figures.summary(), in_flight, sent_during)
    assert (
        figures.correct + figures.spec_error + figures.lost + figures.no_responders == figures.sent
    )

    after = portal.run(
        open_loop(gateway_nc, make, rate=RATE, duration_s=2.0, figures=Figures(), prefix="after"),
        60,
    )
    report("nats-server-after-recovery", after)
    assert after.correct == after.sent == int(RATE * 2.0), (after.summary(), after.wrong_samples)
