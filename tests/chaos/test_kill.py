"""kill -9 and SIGTERM of each actor of a node under load (relay worker processes on nats.conf).

Every request is counted: answered correctly, answered with the spec's error (-32603 "internal
error": a stage was gone for longer than the budget), refused by NATS (no responders), lost (no
answer at all), wrong, late (after budget + margin). SIGTERM drains: nothing is lost. kill -9
loses at most what the killed process held: only an ingress holds requests whose reply subject
nobody else knows, so only an ingress kill may lose any, and no more than were in flight.
"""

from __future__ import annotations

import signal
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nats.aio.client import Client

from tests.chaos.cluster import BUDGET_S, Cluster, Portal
from tests.chaos.load import Check, Figures, Make, open_loop, report
from tests.chaos.payloads import echo_is_correct, echo_request, secrets_is_correct, secrets_request
from workers.reference import enclave_crypto

pytestmark = pytest.mark.usefixtures("node")  # each fault test starts from a whole node

ENCLAVE_KEY = enclave_crypto.public_hex(X25519PrivateKey.generate())
RATE, DURATION_S, KILL_AT_S = 20.0, 4.0, 1.5
KILLED = (
    "ingress",
    "verifier",
    "registry",
    "dispatch-capability",
    "dispatch-secrets",
    "echo",
    "vault",
)


def mixed(cluster: Cluster) -> Make:
    """Half echo capability calls, half vault secrets, each validly attested."""

    def make(request_id: str) -> tuple[bytes, Check]:
        if int(request_id.rsplit("-", 1)[1]) % 2:
            return secrets_request(cluster.chain, request_id, ENCLAVE_KEY), secrets_is_correct
        return echo_request(cluster.chain, request_id), echo_is_correct

    return make


def run_with_fault(
    portal: Portal, nc: Client, cluster: Cluster, actor: str, sig: signal.Signals, prefix: str
) -> tuple[Figures, int, int]:
    """The load, with `sig` sent to one `actor` process at KILL_AT_S and a replacement started
    at once; the figures, the requests in flight at the signal, and the process's exit code.
    After it, with the replacement serving, a short load must be answered correctly in full."""
    figures = Figures()
    running = portal.start(
        open_loop(
            nc, mixed(cluster), rate=RATE, duration_s=DURATION_S, figures=figures, prefix=prefix
        )
    )
    time.sleep(KILL_AT_S)
    victim = cluster.of(actor)[0]
    in_flight, sent = figures.in_flight, figures.sent
    cluster.signal(victim, sig)
    code = cluster.reap(victim)
    # In flight at the kill: unanswered when the signal went, or sent before the process was
    # gone (the load keeps sending meanwhile, and the dying ingress may still take them).
    in_flight += figures.sent - sent
    cluster.replace(victim)
    running.result(DURATION_S + BUDGET_S + 60)
    after = portal.run(
        open_loop(nc, mixed(cluster), rate=RATE, duration_s=1.0, prefix=f"{prefix}-after"), 60
    )
    assert after.correct == after.sent, ("not restored after the restart", after.summary())
    return figures, in_flight, code


@pytest.mark.parametrize("actor", KILLED)
def test_sigterm_of_any_actor_under_load_loses_nothing(
    portal: Portal, gateway_nc: Client, cluster: Cluster, actor: str
) -> None:
    """SIGTERM drains (in-flight requests finish, then exit 0): every request is answered
    correctly, or -32603 while the only replica of a stage restarts; none lost, late or wrong."""
    figures, in_flight, code = run_with_fault(
        portal, gateway_nc, cluster, actor, signal.SIGTERM, f"term-{actor}"
    )
    report("sigterm", figures, actor=actor, in_flight_at_signal=in_flight)
    assert code == 0
    assert figures.sent == int(RATE * DURATION_S)
    assert (figures.lost, figures.wrong, figures.no_responders, figures.late) == (0, 0, 0, 0), (
        figures.summary(),
        figures.wrong_samples,
    )
    assert figures.correct + figures.spec_error == figures.sent


@pytest.mark.parametrize("actor", KILLED)
def test_kill_9_of_any_actor_under_load_loses_at_most_what_an_ingress_held(
    portal: Portal, gateway_nc: Client, cluster: Cluster, actor: str
) -> None:
    """kill -9: every request is answered (correctly, or -32603 within the budget) except, for
    an ingress, at most the requests in flight at the kill; nothing late or wrong."""
    figures, in_flight, code = run_with_fault(
        portal, gateway_nc, cluster, actor, signal.SIGKILL, f"kill-{actor}"
    )
    report("kill-9", figures, actor=actor, in_flight_at_signal=in_flight)
    assert code == -signal.SIGKILL
    assert figures.sent == int(RATE * DURATION_S)
    assert (figures.wrong, figures.no_responders, figures.late) == (0, 0, 0), (
        figures.summary(),
        figures.wrong_samples,
    )
    allowed = in_flight if actor == "ingress" else 0
    assert figures.lost <= allowed, (figures.summary(), in_flight)
    assert figures.correct + figures.spec_error + figures.lost == figures.sent


def test_kill_9_of_an_ingress_holding_requests_loses_exactly_what_it_held(
    portal: Portal, gateway_nc: Client, cluster: Cluster
) -> None:
    """The named loss, made visible: with the verifier frozen (SIGSTOP) both ingresses hold the
    requests; kill -9 of one loses the ones it held (some, never more than were in flight), and
    every other request is answered once the verifier resumes."""
    (verifier,) = cluster.of("verifier")
    victim = cluster.of("ingress")[0]
    figures = Figures()
    make = lambda rid: (echo_request(cluster.chain, rid), echo_is_correct)  # noqa: E731
    cluster.signal(verifier, signal.SIGSTOP)
    try:
        running = portal.start(
            open_loop(gateway_nc, make, rate=RATE, duration_s=1.0, figures=figures, prefix="held")
        )
        deadline = time.monotonic() + 5  # bounded: every request sent, none can be answered
        while figures.sent < int(RATE) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the last ones reach an ingress
        in_flight = figures.in_flight
        cluster.signal(victim, signal.SIGKILL)
        code = cluster.reap(victim)
    finally:
        cluster.signal(verifier, signal.SIGCONT)
    cluster.replace(victim)
    running.result(BUDGET_S + 60)
    report("kill-9-ingress-holding", figures, in_flight_at_signal=in_flight)
    assert code == -signal.SIGKILL
    assert in_flight == figures.sent == int(RATE), figures.summary()
    assert 0 < figures.lost < in_flight, figures.summary()
    assert (figures.wrong, figures.no_responders, figures.late) == (0, 0, 0), figures.wrong_samples
    assert figures.correct + figures.spec_error + figures.lost == figures.sent
