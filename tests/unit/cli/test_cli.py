"""The `relay` command line as a whole."""

from __future__ import annotations

import argparse

import pytest

from workers.cli import main
from workers.cli.args import positive_float, positive_int


def test_relay_without_a_command_is_a_usage_error() -> None:
    """`relay` alone exits 2, as argparse does for every usage error."""
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "abc"])
def test_a_duration_that_is_not_a_finite_positive_number_is_refused(text: str) -> None:
    """Every command's seconds options share one rule: finite and above zero."""
    with pytest.raises(argparse.ArgumentTypeError):
        positive_float(text)


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "many"])
def test_a_count_that_is_not_a_whole_number_above_zero_is_refused(text: str) -> None:
    """Counts are whole numbers from 1."""
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)
