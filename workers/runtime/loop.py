"""The event loop every relay process runs on: uvloop when it is installed, else asyncio's own.

uvloop (libuv) cuts the per-message cost of each NATS hop (fewer Python frames per wakeup and
per socket read), and a request crosses four hops through a node, so it is the default.
`RELAY_EVENT_LOOP=asyncio` selects the standard loop (for debugging, or to compare).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def loop_name() -> str:
    """`uvloop` or `asyncio`: the loop `run` will use in this process."""
    choice = os.environ.get("RELAY_EVENT_LOOP", "uvloop")
    if choice not in {"uvloop", "asyncio"}:
        raise ValueError(f"RELAY_EVENT_LOOP must be 'uvloop' or 'asyncio', got {choice!r}")
    if choice == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:  # not on this platform (uvloop has no Windows build)
            return "asyncio"
    return choice


def run_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on the loop that `loop_name()` names."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
