"""One logical capability call runs once per relay node, however many dispatchers it has.

The in-process `Deduplicator` protects one dispatcher; with several `dispatch-capability`
replicas in a node's queue group, a retried call (a new JSON-RPC id, the same logical key) may
reach another replica and run again. `RELAY_DEDUPE=shared` keeps the claim and the outcome in
the JetStream KV bucket `relay_dedupe` instead:

- key `<node token>.<sha256 of the logical key>` (each relay node still calls the capability
  itself, as upstream's nodes do); entries expire after the dedupe TTL (10 minutes);
- the first dispatcher to `create` the key (an empty value: "running") executes; it then writes
  the encoded `DispatchReply`, which every duplicate returns;
- a duplicate that finds "running" waits (polling, within its deadline) for the outcome;
- when the work raises (the capability was unreachable: nothing ran), the claim is deleted, so
  a retry may run it;
- when the bucket cannot be reached, the call fails closed (`internal error`), never runs
  unguarded. A dispatcher that dies mid-call leaves its claim until the TTL: duplicates then fail
  at their deadline rather than risk a second execution.

Duplicates inside one process still coalesce in memory first, without a KV round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.kv import KeyValue

from schemas import bus, subjects
from workers.dispatch.dedupe import Deduplicator
from workers.runtime import jetstream

log = logging.getLogger("relay.dedupe")

BUCKET = "relay_dedupe"
RUNNING = b""
_UNREACHABLE = (nats.errors.Error, OSError, TimeoutError)


BUCKET_MAX_BYTES = 256 * 2**20
BUCKET_MAX_VALUE_BYTES = 2**20


class DedupeUnavailable(Exception):
    """The call was not run and nothing is remembered: the store is down, or another
    dispatcher still runs it. The caller answers `internal error`; a later retry may succeed."""


class SharedDeduplicator:
    def __init__(
        self,
        kv: KeyValue,
        node: str,
        *,
        local: Deduplicator[bus.DispatchReply] | None = None,
        poll_s: float = 0.05,
        wait_s: float = 10.0,
    ) -> None:
        self._kv = kv
        self._prefix = subjects.encode_token(node)
        self._local = local or Deduplicator(size_of=bus.dispatch_reply_size)
        self._poll_s = poll_s
        self._wait_s = wait_s
        self.executions = 0

    @classmethod
    async def open(
        cls,
        nc: Client,
        node: str,
        *,
        ttl_s: float = 600.0,
        js_domain: str | None = None,
        replicas: int = 1,
    ) -> SharedDeduplicator:
        """The bucket, created on first use with `replicas` (RELAY_KV_REPLICAS: 3 on a cluster,
        so a server's loss does not stop capability calls) in `js_domain`."""
        js = jetstream.context(nc, timeout_s=2.0, domain=js_domain)
        try:
            kv = await jetstream.key_value(js, BUCKET, domain=js_domain)
        except nats.js.errors.BucketNotFoundError:
            await js.create_key_value(
                bucket=BUCKET,
                history=1,
                ttl=ttl_s,
                # Bounded: clients drive its writes. When full, a new claim fails and the call
                # fails closed (not executed) until entries expire; one outcome fits NATS's
                # default max_payload.
                max_bytes=BUCKET_MAX_BYTES,
                max_value_size=BUCKET_MAX_VALUE_BYTES,
                description="relay: one execution per logical capability call (PROTOCOL 7.9)",
                replicas=replicas,
            )
            kv = await jetstream.key_value(js, BUCKET, domain=js_domain)
        return cls(kv, node)

    def kv_key(self, key: str) -> str:
        return f"{self._prefix}.{hashlib.sha256(key.encode()).hexdigest()}"

    async def run(
        self,
        key: str,
        work: Callable[[], Awaitable[bus.DispatchReply]],
        *,
        deadline: float | None = None,
    ) -> bus.DispatchReply:
        return await self._local.run(key, lambda: self._shared(key, work, deadline))

    async def _entry(self, kv_key: str) -> bytes | None:
        """The stored value; None when there is none (never claimed, deleted or expired)."""
        try:
            entry = await self._kv.get(kv_key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return entry.value or RUNNING

    async def _shared(
        self,
        key: str,
        work: Callable[[], Awaitable[bus.DispatchReply]],
        deadline: float | None,
    ) -> bus.DispatchReply:
        kv_key = self.kv_key(key)
        end = deadline if deadline is not None else time.monotonic() + self._wait_s
        try:
            while True:
                try:
                    await self._kv.create(kv_key, RUNNING)
                    break  # ours to run
                except nats.js.errors.KeyWrongLastSequenceError:
                    stored = await self._entry(kv_key)
                if stored:
                    reply: bus.DispatchReply = bus.DISPATCH_REPLY_DECODER.decode(stored)
                    return reply
                if stored is None:
                    continue  # the claim went away (nothing ran): try to take it
                if time.monotonic() + self._poll_s >= end:
                    raise DedupeUnavailable(f"capability call {kv_key} is still running elsewhere")
                await asyncio.sleep(self._poll_s)
        except _UNREACHABLE as exc:
            raise DedupeUnavailable(
                f"dedupe store {BUCKET} unreachable: {jetstream.describe(exc)}"
            ) from exc
        self.executions += 1
        try:
            outcome = await work()
        except BaseException:
            with contextlib.suppress(*_UNREACHABLE, nats.js.errors.Error):
                await self._kv.delete(kv_key)
            raise
        try:
            await self._kv.put(kv_key, bus.ENCODER.encode(outcome))
        except (*_UNREACHABLE, nats.js.errors.Error):
            # It ran; a duplicate now waits for an outcome that never comes and fails closed.
            log.exception("could not record the outcome of capability call %s", kv_key)
        return outcome
