"""The chaos suite: every test here carries the `chaos` marker (`-m 'not chaos'` skips it).

Hypothesis runs derandomized with a bounded number of examples, so CI sees the same inputs on
every run; `RELAY_FUZZ_EXAMPLES=<n>` runs a longer campaign (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.chaos)
