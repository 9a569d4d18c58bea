"""The N4 response memo (PROTOCOL 10.11): one signed result per logical request, in-flight dedupe.

Under `RELAY_PROTOCOL=current` the ingress signs each result; the signature binds the params,
not the JSON-RPC id, so a retry of the same logical request (a new gateway id) is answered with
the stored signed object, re-wrapped with its own id, and the vault or capability is not asked
again. While the first request of a key runs, later ones wait for it: they get its signed result
or its error (same code, same text); a waiter whose own deadline passes first gets
`timed out waiting for in-flight ...` (-32603). Only successes are remembered, for `ttl_s`
(10 minutes, as upstream's default).

Keys. Capability: `call-capability/<workflow_id>/<execution_id>/<reference_id>/<capability_id>`;
secrets: `get-secrets/<workflow_id>/<execution_id>/<digest>`. Two deliberate differences from
upstream: each part is length-prefixed (upstream joins with `/` unescaped, so distinct requests
could collide); and the secrets key ends with a digest of the request itself (owner, org, the
secret ids, the enclave key and config) instead of `callback_id`, a params field no stored
upstream version defines (PROTOCOL 10.13 point 1): a retry with the same params hits, two
different secrets requests of one execution never share an answer.

A stored result is served only when the caller's check accepts it (the ingress: it is this
node's signature over this request's params, `workers/ingress/current.py:answers`); otherwise it
is served afresh and replaced. A retry of the same request always passes. What fails is an entry
another node's ingress wrote into the shared bucket, or one signed for other params under the
same key, which upstream serves anyway (the enclave then rejects it); a capability call is still
not run twice for it, since the dispatcher's dedupe answers it with the first outcome.

Memory is bounded like the capability dedupe store: keys kept as their SHA-256, at most
`max_entries` results and `max_bytes`; past either bound the oldest result is forgotten first
(a retry after that is served afresh, as after the TTL).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

CAPABILITY_PREFIX = "call-capability"
SECRETS_PREFIX = "get-secrets"


def _join(prefix: str, *parts: str) -> str:
    return prefix + "/" + "/".join(f"{len(p)}:{p}" for p in parts)


def capability_key(
    workflow_id: str, execution_id: str, reference_id: str, capability_id: str
) -> str:
    return _join(CAPABILITY_PREFIX, workflow_id, execution_id, reference_id, capability_id)


def secrets_key(workflow_id: str, execution_id: str, request_digest: bytes) -> str:
    return _join(SECRETS_PREFIX, workflow_id, execution_id, request_digest.hex())


def slot_of(key: str) -> bytes:
    """What a key is stored as: its SHA-256 (a key's parts are client text, each up to 1 MB)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class MemoWaitTimeout(Exception):
    """This request's deadline passed while another request of the same key was running."""


class MemoNoResult(Exception):
    """The request this one waited for ended without a result or an error (it was cancelled)."""


class MemoUnavailable(Exception):
    """The shared memo could not be used; the request fails closed (`internal error`)."""


Work = Callable[[], Awaitable[bytes]]


async def wait_for_owner(running: asyncio.Future[bytes], key: str, timeout_s: float) -> bytes:
    """The running request's result, or its very exception; bounded by this waiter's time."""
    done, _ = await asyncio.wait({running}, timeout=timeout_s)
    if not done:
        raise MemoWaitTimeout(key)
    if running.cancelled():
        raise MemoNoResult(key)
    failure = running.exception()
    if failure is not None:
        raise failure
    return running.result()


Check = Callable[[bytes], bool]
"""Whether a stored result may answer this request (the ingress: it is this node's signature
over this request's params); a stored result that fails it is replaced, not served."""


class Memo(Protocol):
    async def run(
        self, key: str, work: Work, *, deadline: float, valid: Check | None = None
    ) -> bytes: ...


class ResponseMemo:
    """In-process memo: signed results by key, with in-flight dedupe and waiter deadlines."""

    def __init__(
        self,
        *,
        ttl_s: float = 600.0,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 2**20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._done: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._running: dict[bytes, asyncio.Future[bytes]] = {}
        self.executions = 0

    @property
    def remembered_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._done)

    def _cost(self, value: bytes) -> int:
        return 32 + len(value)

    def _expire(self, now: float) -> None:
        while self._done:
            slot, (stored_at, value) = next(iter(self._done.items()))
            fresh = now - stored_at <= self._ttl_s
            if fresh and len(self._done) <= self._max and self._bytes <= self._max_bytes:
                break
            self._done.pop(slot)
            self._bytes -= self._cost(value)

    def get(self, key: str) -> bytes | None:
        self._expire(self._clock())
        hit = self._done.get(slot_of(key))
        return None if hit is None else hit[1]

    def remember(self, key: str, value: bytes) -> None:
        slot = slot_of(key)
        old = self._done.pop(slot, None)
        if old is not None:
            self._bytes -= self._cost(old[1])
        self._done[slot] = (self._clock(), value)
        self._bytes += self._cost(value)
        self._expire(self._clock())

    async def run(
        self, key: str, work: Work, *, deadline: float, valid: Check | None = None
    ) -> bytes:
        """The stored result for `key` (if `valid` accepts it), or the running one's, or
        `work()`'s (then stored).

        `deadline` is on `clock`; only a waiter is bound by it here (the owner's work has its
        own deadline inside). A waiter gets the owner's exception, whatever it is.
        """
        hit = self.get(key)
        if hit is not None and (valid is None or valid(hit)):
            return hit
        slot = slot_of(key)
        running = self._running.get(slot)
        if running is not None:
            return await wait_for_owner(running, key, max(0.0, deadline - self._clock()))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[slot] = future
        try:
            self.executions += 1
            value = await work()
        except BaseException as exc:
            # Nothing remembered: a retry runs again. Waiters get this very failure.
            if isinstance(exc, Exception):
                future.set_exception(exc)
            else:
                future.cancel()
            if not future.cancelled():
                future.exception()  # retrieved: only the waiters (if any) re-raise it
            raise
        finally:
            self._running.pop(slot, None)
        self.remember(key, value)
        future.set_result(value)
        return value
