"""The N4 response memo shared by a node's ingress replicas (`RELAY_DEDUPE=shared`).

With several ingress replicas in a node's queue group, a retry (a new gateway id) may reach
another replica. The signed results are then kept in the JetStream KV bucket `relay_memo`:

- key `<node token>.<sha256 of the memo key>` (each node signs its own answers), entries expire
  after the memo TTL (10 minutes);
- the first replica to `create` the key (an empty value: "running") serves the request and then
  writes the signed result, which every later request of that key returns;
- one that finds "running" polls, within its own deadline, for the result
  (`timed out waiting for in-flight ...` past it);
- when the request fails (its error is not remembered, as upstream's), the claim is deleted, so
  a waiter or a retry serves it afresh; a waiter in another replica therefore runs it itself
  rather than getting the first one's error (capability calls are still run once: the dispatch
  dedupe guards them);
- an unreachable bucket fails the request closed (`internal error`).

Requests inside one replica still coalesce in memory first (`ResponseMemo`), without a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.kv import KeyValue

from schemas import subjects
from workers.ingress.memo import Check, MemoUnavailable, MemoWaitTimeout, ResponseMemo, Work
from workers.runtime import jetstream

log = logging.getLogger("relay.memo")

BUCKET = "relay_memo"
RUNNING = b""
BUCKET_MAX_BYTES = 256 * 2**20
BUCKET_MAX_VALUE_BYTES = 2**20
_UNREACHABLE = (nats.errors.Error, OSError, TimeoutError)


class SharedResponseMemo:
    def __init__(
        self, kv: KeyValue, node: str, *, local: ResponseMemo | None = None, poll_s: float = 0.05
    ) -> None:
        self._kv = kv
        self._prefix = subjects.encode_token(node)
        self._local = local or ResponseMemo()
        self._poll_s = poll_s
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
    ) -> SharedResponseMemo:
        """The bucket, created on first use with `replicas` (RELAY_KV_REPLICAS) in `js_domain`,
        as the dedupe bucket is."""
        js = jetstream.context(nc, timeout_s=2.0, domain=js_domain)
        try:
            kv = await jetstream.key_value(js, BUCKET, domain=js_domain)
        except nats.js.errors.BucketNotFoundError:
            await js.create_key_value(
                bucket=BUCKET,
                history=1,
                ttl=ttl_s,
                # Bounded: clients drive its writes. A result over the value bound is served but
                # not shared; a full bucket fails new claims closed until entries expire.
                max_bytes=BUCKET_MAX_BYTES,
                max_value_size=BUCKET_MAX_VALUE_BYTES,
                description="relay: signed results by logical request (PROTOCOL 10.11)",
                replicas=replicas,
            )
            kv = await jetstream.key_value(js, BUCKET, domain=js_domain)
        return cls(kv, node)

    def kv_key(self, key: str) -> str:
        return f"{self._prefix}.{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"

    async def run(
        self, key: str, work: Work, *, deadline: float, valid: Check | None = None
    ) -> bytes:
        return await self._local.run(
            key, lambda: self._shared(key, work, deadline, valid), deadline=deadline, valid=valid
        )

    async def _entry(self, kv_key: str) -> bytes | None:
        try:
            entry = await self._kv.get(kv_key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return entry.value or RUNNING

    async def _shared(self, key: str, work: Work, deadline: float, valid: Check | None) -> bytes:
        kv_key = self.kv_key(key)
        try:
            while True:
                try:
                    await self._kv.create(kv_key, RUNNING)
                    break  # ours to serve
                except nats.js.errors.KeyWrongLastSequenceError:
                    stored = await self._entry(kv_key)
                if stored and (valid is None or valid(stored)):
                    return stored
                if stored:
                    # Not this node's answer to this request: written by another node's ingress
                    # (the bucket is shared on the account) or for other params. Served afresh,
                    # and replaced.
                    log.warning(
                        "memo entry %s does not answer this request: serving it afresh", kv_key
                    )
                    break
                if stored is None:
                    continue  # the claim went away (that request failed): take it
                if time.monotonic() + self._poll_s >= deadline:
                    raise MemoWaitTimeout(key)
                await asyncio.sleep(self._poll_s)
        except _UNREACHABLE as exc:
            raise MemoUnavailable(f"response memo {BUCKET} unreachable: {exc!r}") from exc
        self.executions += 1
        try:
            value = await work()
        except BaseException:
            with contextlib.suppress(*_UNREACHABLE, nats.js.errors.Error):
                await self._kv.delete(kv_key)
            raise
        try:
            await self._kv.put(kv_key, value)
        except (*_UNREACHABLE, nats.js.errors.Error):
            # Served, but not shared (too large, or the bucket went away): release the claim so
            # that other replicas serve the key themselves instead of waiting for nothing.
            log.exception("could not share the signed result of %s", kv_key)
            with contextlib.suppress(*_UNREACHABLE, nats.js.errors.Error):
                await self._kv.delete(kv_key)
        return value
