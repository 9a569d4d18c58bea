"""When a message reached this process: stamped as nats-py queues it, before any wait.

nats-py's reader puts each message for a callback subscription into that subscription's pending
queue (`put_nowait`), and one task per subscription takes them out one at a time for the callback.
A time taken in the callback therefore misses however long the message sat in that queue, which
is exactly the wait that grows under load. `stamp_arrivals` wraps the queue's `put_nowait`, so
every message carries the monotonic time at which the reader handed it over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

_ATTRIBUTE = "_relay_arrived_at"


class ArrivalStampError(RuntimeError):
    """The installed nats-py no longer queues messages the way `stamp_arrivals` relies on."""


def stamp_arrivals(sub: Subscription) -> None:
    """Stamp every message queued for `sub` from now on with its arrival time (idempotent).

    Fails loudly (at start, not per request) when nats-py's internals changed: the node's
    deadlines depend on the stamp, so an upgrade that breaks it must not pass silently.
    """
    queue: Any = getattr(sub, "_pending_queue", None)
    if not isinstance(queue, asyncio.Queue):
        raise ArrivalStampError("nats-py subscription has no _pending_queue: cannot stamp arrivals")
    if getattr(queue, _ATTRIBUTE, False):
        return
    original = queue.put_nowait

    def put_nowait(msg: Msg) -> None:
        # Set before the put: once queued the message may be taken at the next await.
        setattr(msg, _ATTRIBUTE, time.monotonic())
        original(msg)

    # An instance attribute shadows the method for this one queue only.
    setattr(queue, "put_nowait", put_nowait)  # noqa: B010
    setattr(queue, _ATTRIBUTE, True)


def arrived_at(msg: Msg) -> float | None:
    """The message's arrival stamp (time.monotonic), or None if it was not stamped."""
    stamp = getattr(msg, _ATTRIBUTE, None)
    return stamp if isinstance(stamp, float) else None
