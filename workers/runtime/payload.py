"""Whether a reply fits the server's max_payload, headers included.

nats-py checks only the payload against max_payload, while nats-server counts headers too
(HPUB's total size) and closes the whole connection on a violation, costing every request in
flight on it. So the size is checked here, before publishing, with the headers counted as the
client writes them.
"""

from __future__ import annotations

from nats.aio.client import Client

_HEADER_LINE = len(b"NATS/1.0\r\n")
_HEADER_END = len(b"\r\n")


def wire_size(payload: bytes, headers: dict[str, str] | None) -> int:
    """Bytes the server counts against max_payload for this message (an upper bound)."""
    if not headers:
        return len(payload)
    size = _HEADER_LINE + _HEADER_END
    for key, value in headers.items():
        size += len(key.encode()) + len(b": ") + len(value.encode()) + len(b"\r\n")
    return size + len(payload)


def fits(nc: Client, payload: bytes, headers: dict[str, str] | None = None) -> bool:
    """True when the server connected to will accept this message's size."""
    return wire_size(payload, headers) <= nc.max_payload
