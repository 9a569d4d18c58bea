"""The `relay` command line as a whole."""

from __future__ import annotations

import pytest

from workers.cli import main


def test_relay_without_a_command_is_a_usage_error() -> None:
    """`relay` alone exits 2, as argparse does for every usage error."""
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
