"""The G3 forwarding rule of PROTOCOL 10.10, row by row, with its exact error texts."""

from __future__ import annotations

import pytest

from workers.gateway import g3
from workers.gateway.errors import ErrorCode


def counts(
    signed: int,
    errors: int = 0,
    undecodable: int = 0,
    members: int = 4,
    reachable: int | None = None,
) -> g3.Counts:
    return g3.Counts(
        signed=signed,
        errors=errors,
        undecodable=undecodable,
        members=members,
        reachable=members if reachable is None else reachable,
    )


@pytest.mark.parametrize("expired", [False, True])
def test_2f_plus_1_signed_forwards_at_once(expired: bool) -> None:
    """F=1: three signed responses forward, whatever else is pending."""
    assert g3.decide(counts(3), 1, expired=expired) == g3.Forward()


def test_every_node_answered_with_f_plus_1_signed_forwards() -> None:
    """Two signed and two errors from four nodes: all answered, F+1 signed: forward."""
    assert g3.decide(counts(2, errors=1, undecodable=1), 1, expired=False) == g3.Forward()


def test_f_plus_1_signed_with_nodes_pending_waits_and_arms_the_grace_window() -> None:
    """Two signed, two pending: wait, and arm the quorum-grace deadline."""
    assert g3.decide(counts(2), 1, expired=False) == g3.Wait(arm_grace=True)


def test_fewer_than_f_plus_1_signed_with_quorum_possible_waits_without_grace() -> None:
    """One signed, one error, two pending: quorum still possible, no grace yet."""
    assert g3.decide(counts(1, errors=1), 1, expired=False) == g3.Wait(arm_grace=False)


def test_quorum_out_of_reach_while_live_is_a_fatal_error_with_upstreams_text() -> None:
    """Three errors of four: at most one signed possible, need two: FatalError at once."""
    decision = g3.decide(counts(0, errors=2, undecodable=1), 1, expired=False)
    assert decision == g3.Fail(
        ErrorCode.FatalError,
        "relay quorum unreachable: 0 signed responses, at most 1 possible, need 2"
        " (collected=3 nodes=4 remaining=1 errors=2 undecodable=1)",
    )


def test_expiry_below_f_plus_1_signed_is_a_timeout_with_upstreams_text() -> None:
    """At expiry one signed of two answers: RequestTimeoutError naming every count."""
    decision = g3.decide(counts(1, errors=1), 1, expired=True)
    assert decision == g3.Fail(
        ErrorCode.RequestTimeoutError,
        "request expired: 1 signed relay responses, need at least 2 to reach quorum"
        " (collected=2 nodes=4 unanswered=2 errors=1 undecodable=0)",
    )


def test_expiry_with_f_plus_1_signed_forwards() -> None:
    """At expiry two signed of four nodes (two silent): forward what is there."""
    assert g3.decide(counts(2), 1, expired=True) == g3.Forward()


def test_an_unreachable_member_is_not_waited_for() -> None:
    """One send failed: two signed and one error from the three reachable nodes forward."""
    assert g3.decide(counts(2, errors=1, reachable=3), 1, expired=False) == g3.Forward()


def test_f_zero_forwards_the_first_signed_response() -> None:
    """F=0: 2F+1 = 1 signed response is enough."""
    assert g3.decide(counts(1, members=1), 0, expired=False) == g3.Forward()


@pytest.mark.parametrize(
    ("grace", "timeout", "expected"), [(10.0, 30.0, 10.0), (-1.0, 30.0, 0.0), (60.0, 30.0, 30.0)]
)
def test_the_grace_window_is_clamped_as_upstream_does(
    grace: float, timeout: float, expected: float
) -> None:
    """Negative means off (0), and never longer than the request timeout."""
    assert g3.grace_seconds(grace, timeout) == expected
