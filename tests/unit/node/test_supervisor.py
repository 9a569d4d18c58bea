"""The restart rules of `relay up` on plain numbers."""

from __future__ import annotations

import pytest

from workers.node.supervisor import ActorDeaths, GiveUp, Restart, RestartPolicy


def test_the_backoff_doubles_with_each_death_in_a_row_up_to_its_bound() -> None:
    """0.5, 1, 2, 4, then capped at the maximum, while deaths stay under the limit."""
    deaths = ActorDeaths(RestartPolicy(max_backoff_s=3.0, max_deaths=100, window_s=60.0))
    delays = []
    now = 0.0
    for _ in range(5):
        outcome = deaths.died(now=now, started_at=now - 1.0)
        assert isinstance(outcome, Restart)
        delays.append(outcome.delay_s)
        now += 1.0
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_an_actor_dying_max_deaths_times_within_the_window_is_given_up() -> None:
    """The third death within 60 s with max_deaths=3 is a give-up, the two before restarts."""
    deaths = ActorDeaths(RestartPolicy(max_deaths=3, window_s=60.0))
    assert isinstance(deaths.died(now=0.0, started_at=-1.0), Restart)
    assert isinstance(deaths.died(now=10.0, started_at=9.0), Restart)
    assert deaths.died(now=59.0, started_at=58.0) == GiveUp(deaths=3, window_s=60.0)


def test_deaths_older_than_the_window_are_forgotten_and_a_stable_run_resets_the_backoff() -> None:
    """Deaths spread wider than the window never give up; after a whole window up, the backoff starts over."""
    deaths = ActorDeaths(RestartPolicy(max_deaths=2, window_s=10.0))
    now = 0.0
    for _ in range(5):
        outcome = deaths.died(now=now, started_at=now - 11.0)
        assert outcome == Restart(delay_s=0.5, deaths=1)
        now += 11.0


@pytest.mark.parametrize(
    "bad",
    [
        {"max_deaths": 0},
        {"window_s": 0.0},
        {"initial_backoff_s": float("nan")},
        {"initial_backoff_s": 5.0, "max_backoff_s": 1.0},
    ],
)
def test_a_policy_that_could_not_work_is_refused(bad: dict[str, float]) -> None:
    """No deaths allowed, an empty window, nan or an inverted backoff range: a ValueError."""
    with pytest.raises(ValueError, match=r"."):
        RestartPolicy(**bad)  # type: ignore[arg-type]
