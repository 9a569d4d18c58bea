"""NATS server lists: `nats://a:4222,nats://b:4222`, from a flag given once or repeated, or from
`RELAY_NATS_URL`.

nats-py takes a list of servers and tries them in turn (at start and at every reconnect), but it
reads one string as one URL: `nats://a,nats://b` fails with "invalid connect url option". So
every connection goes through `parse_servers`, which splits, checks and returns the list; a bad
entry is one clear line naming the entry (its password masked), never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from workers.runtime.credentials import redact_url

DEFAULT_SERVERS = "nats://127.0.0.1:4222"
SCHEMES = ("nats", "tls", "ws", "wss")


class ServerListError(ValueError):
    """A NATS server list with an empty, unparsable or unsupported entry."""


def parse_servers(value: str | Iterable[str]) -> list[str]:
    """The servers of a comma-separated list (or several), each checked; order kept."""
    parts = [value] if isinstance(value, str) else list(value)
    servers: list[str] = []
    for part in parts:
        for raw in part.split(","):
            entry = raw.strip()
            if not entry:
                raise ServerListError(
                    f"NATS server list {redact_url(','.join(parts))!r} has an empty entry"
                )
            servers.append(_checked(entry))
    if not servers:
        raise ServerListError("no NATS server given")
    return servers


def _checked(entry: str) -> str:
    # nats-py reads `host:port` and `user:pw@host:port` as nats://.
    url = entry if "://" in entry else f"nats://{entry}"
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ServerListError(f"NATS server {shown!r} is not a URL (bad port?)") from None
    if parts.scheme not in SCHEMES:
        raise ServerListError(
            f"NATS server {shown!r}: scheme {parts.scheme!r} is not one of {', '.join(SCHEMES)}"
        )
    if not parts.hostname:
        raise ServerListError(f"NATS server {shown!r} names no host")
    if port == 0:
        raise ServerListError(f"NATS server {shown!r}: port 0")
    return url


def join_servers(servers: Iterable[str]) -> str:
    """One string for a setting or an environment variable (`RELAY_NATS_URL`)."""
    return ",".join(servers)
