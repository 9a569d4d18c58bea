"""How every KV user reaches JetStream: a domain (hub and leaf servers), replicas for the buckets
the relay creates, and errors that say which part did not answer.

`RELAY_JS_DOMAIN` names the JetStream domain whose KV buckets the relay uses (on a hub with one
leaf per operator, each leaf usually runs its own domain, and the registry lives in the hub's);
empty means the server's own JetStream. `RELAY_KV_REPLICAS` is the replica count of the buckets
the relay creates itself (`relay_dedupe`; `relay registry load --replicas` for the registry):
1 on a single server, 3 on a cluster. Both apply to every KV user: registry caches, `relay
registry load/show`, the gateway's membership, the shared dedupe.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

MAX_REPLICAS = 5  # JetStream's own ceiling for a stream's replicas
_DOMAIN = re.compile(r"^[A-Za-z0-9_-]+$")  # one subject token: $JS.<domain>.API.>


@dataclass(frozen=True, kw_only=True)
class JetStreamOptions:
    """The domain the relay's buckets live in, and the replicas of the buckets it creates."""

    domain: str | None = None
    replicas: int = 1

    def __post_init__(self) -> None:
        check_domain(self.domain)
        check_replicas(self.replicas)

    @classmethod
    def from_env(cls) -> JetStreamOptions:
        return cls(domain=env_domain(), replicas=env_replicas())


def check_domain(domain: str | None) -> None:
    if domain is not None and not _DOMAIN.match(domain):
        raise ValueError(
            f"RELAY_JS_DOMAIN must be one subject token (letters, digits, - and _), got {domain!r}"
        )


def check_replicas(replicas: int) -> None:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ValueError(f"RELAY_KV_REPLICAS must be a whole number, got {replicas!r}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"RELAY_KV_REPLICAS must be 1-{MAX_REPLICAS}, got {replicas}")


def env_domain() -> str | None:
    domain = os.environ.get("RELAY_JS_DOMAIN", "").strip()
    check_domain(domain or None)
    return domain or None


def env_replicas() -> int:
    text = os.environ.get("RELAY_KV_REPLICAS", "").strip()
    if not text:
        return 1
    try:
        replicas = int(text)
    except ValueError:
        raise ValueError(f"RELAY_KV_REPLICAS must be a whole number, got {text!r}") from None
    check_replicas(replicas)
    return replicas


def context(nc: Client, *, timeout_s: float, domain: str | None) -> JetStreamContext:
    """The JetStream context of `domain` (None: the connected server's own)."""
    if domain is None:
        return nc.jetstream(timeout=timeout_s)
    return nc.jetstream(timeout=timeout_s, domain=domain)


def describe(exc: BaseException, *, domain: str | None = None) -> str:
    """One line for an operator: a server that answered while JetStream did not reads very
    differently from no server at all (nats-py says `TimeoutError` for both, and
    `ServiceUnavailableError ... description='None'` for a 503)."""
    where = f"JetStream domain {domain!r}" if domain else "JetStream"
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return f"{where} is unavailable (503: no stream leader yet, or JetStream is off)"
    if isinstance(exc, nats.errors.NoRespondersError):
        return f"{where} did not answer: not enabled for this account, or no such domain"
    if isinstance(exc, nats.js.errors.APIError):
        what = exc.description or f"error code {exc.err_code}"
        return f"{where} refused: {what} (status {exc.code})"
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return f"the NATS server answered but {where} did not, in time (leader election, or its servers are down)"
    if isinstance(exc, nats.errors.ConnectionClosedError | nats.errors.NoServersError):
        return "no NATS server answered"
    return str(exc) or type(exc).__name__


class _CrossDomainWrites:
    """A JetStreamContext whose KV writes reach the bucket of another JetStream domain.

    nats-py reads a bucket in another domain correctly (its API calls carry `$JS.<domain>.API`)
    but publishes writes to the bare `$KV.<bucket>.<key>`, which from a leaf server lands in the
    leaf's own JetStream, or nowhere ("no responders"). nats.go (ADR-8) sends them to
    `$JS.<domain>.API.$KV.<bucket>.<key>`, which the hub maps to its stream; so do we.
    Everything but `publish` is the wrapped context's own.
    """

    def __init__(self, js: JetStreamContext, domain: str) -> None:
        self._js = js
        self._prefix = f"$JS.{domain}.API."

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject.startswith("$KV."):
            subject = self._prefix + subject
        return await self._js.publish(subject, *args, **kwargs)


async def key_value(js: JetStreamContext, bucket: str, *, domain: str | None) -> KeyValue:
    """The bucket, readable and writable from wherever the client is connected."""
    kv = await js.key_value(bucket)
    if domain is None:
        return kv
    info = await js.stream_info(f"KV_{bucket}")
    return KeyValue(
        name=bucket,
        stream=f"KV_{bucket}",
        pre=f"$KV.{bucket}.",
        js=cast(JetStreamContext, _CrossDomainWrites(js, domain)),
        direct=bool(info.config.allow_direct),
    )
