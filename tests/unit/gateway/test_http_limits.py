"""The HTTP front's connection cap under a file-descriptor limit, and its timeout checks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from workers.gateway.http import DEFAULT_MAX_CONNECTIONS, HttpLimits, connection_cap


def test_the_default_cap_is_lowered_to_fit_a_small_fd_limit() -> None:
    """At 1024 descriptors an eighth stays for the rest: 896 connections, not 4096."""
    assert connection_cap(None, 1024) == 896
    assert connection_cap(None, 256) == 224
    assert connection_cap(None, 65536) == DEFAULT_MAX_CONNECTIONS


def test_an_explicit_cap_that_does_not_fit_the_fd_limit_is_refused() -> None:
    """Asking for more connections than the descriptors allow fails at start, naming both."""
    with pytest.raises(ValueError, match="file-descriptor limit 1024"):
        connection_cap(1000, 1024)
    assert connection_cap(896, 1024) == 896


@pytest.mark.parametrize("value", [0, -1])
def test_a_cap_below_one_is_refused(value: int) -> None:
    """Zero or negative connections would serve nobody."""
    with pytest.raises(ValueError, match="at least 1"):
        connection_cap(value, 65536)


@pytest.mark.parametrize("field", ["header_timeout_s", "read_timeout_s", "keepalive_timeout_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_timeouts_must_be_finite_and_positive(field: str, value: float) -> None:
    """A zero, negative, nan or infinite timeout would close at once or never."""
    timeouts: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        HttpLimits(**timeouts)
