"""Sending a request to the gateway's NATS front, `relay.v1.<don>.gateway` (optional: needs
nats-py, and an event loop).

The only module of the enclave client that imports NATS; the rest of `workers.enclave` is pure.
Connect as the `enclave` user of nats.conf (it may publish only on the gateway subject) with
inbox prefix `_INBOX_enclave`, the only inbox that user may read.
"""

from __future__ import annotations

import nats
import nats.errors
from nats.aio.client import Client

from schemas import subjects
from workers.enclave.errors import TransportError

INBOX_PREFIX = subjects.inbox_prefix("enclave")


async def connect(
    url: str, *, user: str | None, password: str | None, inbox_prefix: str = INBOX_PREFIX
) -> Client:
    """A connection as an enclave client user, reading answers only in its own inbox (an
    enclave with a user of its own passes that user's prefix)."""
    try:
        return await nats.connect(
            url, user=user, password=password, inbox_prefix=inbox_prefix, name="relay-enclave"
        )
    except (OSError, nats.errors.Error) as exc:
        raise TransportError(f"cannot connect to NATS: {exc}") from exc


class NatsTransport:
    def __init__(self, nc: Client, don: str, *, timeout_s: float = 35.0) -> None:
        self._nc = nc
        self._subject = subjects.gateway(don)
        self._timeout = timeout_s

    async def send(self, body: bytes) -> bytes:
        try:
            reply = await self._nc.request(self._subject, body, timeout=self._timeout)
        except nats.errors.NoRespondersError as exc:
            raise TransportError(f"no gateway listens on {self._subject}") from exc
        except (nats.errors.Error, OSError) as exc:
            raise TransportError(f"request on {self._subject} failed: {exc}") from exc
        return bytes(reply.data)
