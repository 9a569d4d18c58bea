"""The event loop chooser: uvloop by default where installed, asyncio on request."""

from __future__ import annotations

import asyncio

import pytest

from workers.runtime.loop import loop_name, run_loop


async def _running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """With RELAY_EVENT_LOOP unset the coroutine runs on uvloop's loop."""
    pytest.importorskip("uvloop")
    monkeypatch.delenv("RELAY_EVENT_LOOP", raising=False)
    assert loop_name() == "uvloop"
    assert run_loop(_running_loop_module()).startswith("uvloop")


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """RELAY_EVENT_LOOP=asyncio runs the coroutine on asyncio's own loop."""
    monkeypatch.setenv("RELAY_EVENT_LOOP", "asyncio")
    assert loop_name() == "asyncio"
    assert run_loop(_running_loop_module()).startswith("asyncio")


def test_an_unknown_loop_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo is an error, not a silent fallback."""
    monkeypatch.setenv("RELAY_EVENT_LOOP", "tokio")
    with pytest.raises(ValueError, match="RELAY_EVENT_LOOP"):
        loop_name()
