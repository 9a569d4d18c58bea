"""The registry actor: capabilities-registry lookups over a cached view of a JetStream KV bucket.

Three layers:
- pure lookups (`measurements`, `capability`, `local_node`, `don`, `handle`) over one immutable
  `RegistryView`; every failure is a -32603 `StageError` whose detail is upstream's text
  (PROTOCOL 2.5 and 3.3);
- `RegistryCache`: watches the bucket and swaps whole views under an aiorwlock write lock; it
  keeps the last-known-good view through KV outages and bad writes, and fails closed until the
  bucket was read once. The gateway and others can run one in-process;
- `run`: the `relay-registry` nats.micro service answering `relay.v1.<don>.<node>.registry.<verb>`.

Ordering: upstream takes `dons[0]` of `DONsForCapability`, which iterates a Go map (random order).
Here `dons[0]` is the hosting DON with the lowest id, so every honest node picks the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiorwlock
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.kv import KeyValue

from schemas import bus, subjects
from workers.registry.store import initial_entries
from workers.registry.view import (
    CapabilityConfig,
    DonView,
    RegistryDataError,
    RegistryView,
    build_view,
)
from workers.runtime import jetstream
from workers.runtime.bus import Handler, Headers, Service
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.registry")

INTERNAL = -32603
CONFIDENTIAL_WORKFLOWS = "confidential-workflows@1.0.0-alpha"
NOT_LOADED = (
    f"registry not loaded: nothing has been read from KV bucket {subjects.REGISTRY_BUCKET} yet"
)
EMPTY = "empty local registry: no DONs registered"
NO_MEASUREMENTS = "no trusted measurements found in capabilities registry"


def _internal(detail: str) -> bus.StageError:
    # -32603's wire message is always "internal error"; the detail is only logged by the ingress.
    return bus.StageError(code=INTERNAL, message="internal error", detail=detail)


# --- pure lookups -----------------------------------------------------------------------------


class _LookupError(Exception):
    """A registry query failed; the text is upstream's inner error."""


def _ensure_not_empty(view: RegistryView) -> None:
    if not view.loaded:
        raise _LookupError(NOT_LOADED)
    if not view.dons:
        raise _LookupError(EMPTY)


def dons_for_capability(view: RegistryView, capability_id: str) -> list[DonView]:
    """The DONs listing the capability, lowest id first.

    Like upstream's interface this may return an empty list without an error: here, when the
    capability is configured somewhere but no DON lists it.
    """
    _ensure_not_empty(view)
    ids = view.hosting.get(capability_id, ())
    if not ids and not view.knows_capability(capability_id):
        raise _LookupError(f"could not find DON for capability {capability_id}")
    return [view.dons[i] for i in ids]


def config_for_capability(view: RegistryView, capability_id: str, don_id: int) -> CapabilityConfig:
    _ensure_not_empty(view)
    if don_id not in view.dons:
        raise _LookupError(f"could not find don {don_id}")
    config = view.configs.get((don_id, capability_id))
    if config is None:
        raise _LookupError(
            f"could not find capability configuration for capability {capability_id} "
            f"and donID {don_id}"
        )
    return config


def measurements(
    view: RegistryView, capability_id: str = CONFIDENTIAL_WORKFLOWS
) -> bus.Measurements | bus.StageError:
    """PROTOCOL 3.3 steps 1-6: the trusted values of the first hosting DON's enclave config."""
    try:
        dons = dons_for_capability(view, capability_id)
    except _LookupError as exc:
        return _internal(f"failed to find DON for {capability_id}: {exc}")
    if not dons:
        return _internal(f"no DON found hosting {capability_id}")
    try:
        config = config_for_capability(view, capability_id, dons[0].id)
    except _LookupError as exc:
        return _internal(f"failed to get config for {capability_id}: {exc}")
    if not config.has_default:
        return _internal(f"no default config for {capability_id}")
    if config.enclaves is None:
        return _internal(f"failed to unwrap enclave config: {config.unwrap_error}")
    if not config.enclaves.trusted_values:
        return _internal(NO_MEASUREMENTS)
    return bus.Measurements(
        revision=view.revision,
        trusted_values=list(config.enclaves.trusted_values),
        ca_roots_pem=config.enclaves.ca_roots_pem,
    )


def capability(view: RegistryView, capability_id: str) -> bus.CapabilityInfo | bus.StageError:
    """GetExecutable: the lowest-id DON listing the capability."""
    if not view.loaded:
        return _internal(f"capability not found: {capability_id}: {NOT_LOADED}")
    ids = view.hosting.get(capability_id, ())
    if not ids:
        return _internal(f"capability not found: {capability_id}")
    return bus.CapabilityInfo(capability_id=capability_id, don_id=ids[0])


def local_node(view: RegistryView, address: str) -> bus.LocalNode | bus.StageError:
    """This node's workflow DON id and that DON's config version (vault request metadata)."""
    try:
        _ensure_not_empty(view)
        node = view.nodes.get(address)
        if node is None:
            raise _LookupError(f"could not find node {address}")
        don = view.dons.get(node.workflow_don_id)
        if don is None:
            raise _LookupError(
                f"node {address}: could not find workflow don {node.workflow_don_id}"
            )
    except _LookupError as exc:
        return _internal(f"failed to get local node: {exc}")
    return bus.LocalNode(workflow_don_id=don.id, workflow_don_config_version=don.config_version)


def don(view: RegistryView, name: str) -> bus.DonInfo | bus.StageError:
    """A DON's id, F and members, by name (the gateway's quorum arithmetic)."""
    try:
        _ensure_not_empty(view)
        found = view.don_by_name(name)
        if found is None:
            raise _LookupError(f"could not find DON named {name!r}")
    except _LookupError as exc:
        return _internal(f"failed to get DON {name}: {exc}")
    return bus.DonInfo(id=found.id, name=found.name, f=found.f, members=list(found.members))


def trust(view: RegistryView, don_name: str, node: str) -> bus.Trust | bus.StageError:
    """The current protocol's trust anchors for `node` of relay DON `don_name` (PROTOCOL 10.7,
    10.8): every part must be in the registry, or the request fails closed."""
    try:
        _ensure_not_empty(view)
        relay = view.don_by_name(don_name)
        if relay is None:
            raise _LookupError(f"could not find DON named {don_name!r}")
        if not relay.peer_ids:
            raise _LookupError(f"relay DON {don_name} has no peer ids in the registry")
        own = relay.peer_id_of(node)
        if own is None:
            raise _LookupError(f"node {node} is not a member of relay DON {don_name}")
        record = view.nodes.get(node)
        if record is None:
            raise _LookupError(f"could not find node {node}")
        workflow = view.dons.get(record.workflow_don_id)
        if workflow is None:
            raise _LookupError(f"node {node}: could not find workflow don {record.workflow_don_id}")
        if not workflow.peer_ids:
            raise _LookupError(f"workflow DON {workflow.id} has no peer ids in the registry")
    except _LookupError as exc:
        return _internal(f"failed to get relay trust: {exc}")
    return bus.Trust(
        revision=view.revision,
        relay_f=relay.f,
        relay_signers=list(relay.peer_ids),
        own_peer_id=own,
        workflow_f=workflow.f,
        workflow_members=list(workflow.peer_ids),
        require_bft_quorum=workflow.require_bft_quorum,
    )


def handle(view: RegistryView, request: bus.RegistryRequest, node: str) -> bus.RegistryReply:
    """Answer one decoded request from one view; `node` is the address LocalNode asks about."""
    if isinstance(request, bus.MeasurementsRequest):
        return measurements(view, request.capability_id)
    if isinstance(request, bus.CapabilityRequest):
        return capability(view, request.capability_id)
    if isinstance(request, bus.LocalNodeRequest):
        return local_node(view, node)
    if isinstance(request, bus.TrustRequest):
        return trust(view, request.don, node)
    return don(view, request.name)


# --- the cache --------------------------------------------------------------------------------


class _WatchLost(Exception):
    """The watch can no longer be trusted to be current; re-establish it from scratch."""


Listener = Callable[[RegistryView], None]


class RegistryCache:
    """The bucket's current view: watched, swapped whole under a write lock, read under a read lock.

    Until the bucket has been read once, `view()` returns an unloaded view and every lookup fails
    closed. After that a KV outage, a missing bucket or a write that does not validate never
    replaces the last-known-good view; the watch is re-established (a full reload) when the
    server is back. Writes within `settle_s` of each other are applied as one view, so a
    multi-key load does not expose its intermediate states.
    """

    def __init__(
        self,
        *,
        bucket: str = subjects.REGISTRY_BUCKET,
        js_domain: str | None = None,
        retry_interval_s: float = 0.5,
        tick_s: float = 0.2,
        # Two checks confirm a stalled watch: at 0.4 s apart a dead one is replaced within the
        # one second a registry change may take to reach the node.
        health_interval_s: float = 0.4,
        settle_s: float = 0.05,
        max_settle_s: float = 0.25,
        request_timeout_s: float = 1.0,
    ) -> None:
        self.bucket = bucket
        self.js_domain = js_domain
        self._retry_interval_s = retry_interval_s
        self._tick_s = tick_s
        self._health_interval_s = health_interval_s
        self._settle_s = settle_s
        self._max_settle_s = max_settle_s
        self._request_timeout_s = request_timeout_s
        self._lock = aiorwlock.RWLock(fast=True)
        self._view = RegistryView.unloaded()
        self._entries: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self._listeners: list[Listener] = []
        self._problem = ""  # why the bucket is not (fully) reflected; "" when it is
        self.watches_established = 0

    @property
    def problem(self) -> str:
        return self._problem

    async def start(self, nc: Client) -> None:
        """Start watching in the background; returns at once (lookups fail closed until loaded)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(nc), name=f"registry-watch-{self.bucket}")

    async def stop(self) -> None:
        """Stop watching; the last view stays readable."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def view(self) -> RegistryView:
        async with self._lock.reader_lock:
            return self._view

    def not_loaded(self) -> str | None:
        """None once the bucket has been read (the view is kept from then on), else why not:
        a readiness check, so an actor is not ready while every lookup would fail closed."""
        if self._loaded.is_set():
            return None
        return f"registry view not loaded: {self._problem or 'no answer from the bucket yet'}"

    async def wait_loaded(self, timeout_s: float) -> RegistryView:
        """The view once the bucket has been read; raises TimeoutError after `timeout_s`."""
        await asyncio.wait_for(self._loaded.wait(), timeout_s)
        return await self.view()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(view)` after every swap (for example the gateway's DON membership)."""
        self._listeners.append(listener)

    async def _swap(self, watermark: int) -> None:
        """Rebuild from the current entries; keep the old view if they do not validate."""
        current = self._view
        revision = max(watermark, current.revision + 1) if current.loaded else max(watermark, 1)
        try:
            view = build_view(self._entries, revision=revision)
        except RegistryDataError as exc:
            self._set_problem(
                f"bucket content rejected, serving revision {current.revision}: {exc}"
            )
            return
        self._set_problem("")
        if current.loaded and _same_content(current, view):
            return
        async with self._lock.writer_lock:
            self._view = view
        self._loaded.set()
        log.info(
            "registry view revision %d: %d DONs, %d capability configs, %d nodes",
            view.revision,
            len(view.dons),
            len(view.configs),
            len(view.nodes),
        )
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("a registry listener failed")

    def _set_problem(self, problem: str) -> None:
        if problem and problem != self._problem:
            log.error("registry: %s", problem)
        elif not problem and self._problem:
            log.warning("registry: bucket %s is reflected again", self.bucket)
        self._problem = problem

    async def _run(self, nc: Client) -> None:
        while True:
            if nc.is_closed:
                # Whoever owns the connection closed it: nothing to retry, the view stays frozen.
                self._set_problem(f"NATS connection closed; revision {self._view.revision} frozen")
                return
            try:
                await self._watch(nc)
            except asyncio.CancelledError:
                raise
            except nats.js.errors.BucketNotFoundError:
                self._set_problem(
                    f"KV bucket {self.bucket} does not exist (run `relay registry load FILE`)"
                )
            except (_WatchLost, nats.errors.Error, OSError, TimeoutError) as exc:
                what = "keeping" if self._view.loaded else "no view yet, failing closed;"
                self._set_problem(
                    f"KV bucket {self.bucket} unreachable ({jetstream.describe(exc, domain=self.js_domain)}); "
                    f"{what} revision {self._view.revision}"
                )
            except Exception:
                # A bug must not end the watch for good: log it, keep the view, retry.
                log.exception("registry watch failed")
            await asyncio.sleep(self._retry_interval_s)

    async def _watch(self, nc: Client) -> None:
        if not nc.is_connected:
            raise _WatchLost("not connected to NATS")
        js = jetstream.context(nc, timeout_s=self._request_timeout_s, domain=self.js_domain)
        kv = await js.key_value(self.bucket)
        reconnects = nc.stats["reconnects"]
        # Everything up to this sequence is in the initial delivery (the last value per key);
        # an empty stream (say, just purged) delivers nothing, so there is nothing to wait for.
        state = (await kv.status()).stream_info.state
        watermark = state.last_seq
        watcher = await kv.watchall()
        try:
            entries, seen = await self._initial(watcher, watermark if state.messages else 0)
            watermark = max(watermark, seen)
            self._entries = entries
            self.watches_established += 1
            await self._swap(watermark)
            await self._follow(nc, kv, watcher, watermark, reconnects)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher.stop(), self._request_timeout_s)  # type: ignore[no-untyped-call]

    async def _initial(
        self, watcher: KeyValue.KeyWatcher, last_seq: int
    ) -> tuple[dict[str, bytes], int]:
        return await initial_entries(
            watcher,
            last_seq,
            timeout_s=self._request_timeout_s * 5,
            settle_s=self._request_timeout_s,
        )

    async def _follow(
        self,
        nc: Client,
        kv: KeyValue,
        watcher: KeyValue.KeyWatcher,
        watermark: int,
        reconnects: int,
    ) -> None:
        """Apply live updates; check the watch's health whenever the bucket is quiet."""
        suspect: int | None = None
        next_check = time.monotonic() + self._health_interval_s
        while True:
            try:
                entry = await watcher.updates(timeout=self._tick_s)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                entry = None
            if entry is not None:
                watermark = max(watermark, _apply(self._entries, entry))
                watermark = await self._settle(watcher, watermark)
                await self._swap(watermark)
                continue
            if not nc.is_connected:
                raise _WatchLost("disconnected from NATS")
            if nc.stats["reconnects"] != reconnects:
                # The server may have restarted and lost our ephemeral consumer: reload.
                raise _WatchLost("reconnected to NATS")
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + self._health_interval_s
            state = (await kv.status()).stream_info.state
            last = state.last_seq
            # A write the stream has but we have not seen after a whole interval: the watch is dead.
            if suspect is not None and watermark < suspect:
                raise _WatchLost(f"watch stalled at revision {watermark}, stream at {last}")
            suspect = last if last > watermark else None
            # With history 1 every key we hold has its latest message in the stream (deletes
            # add markers, never remove more): fewer messages than keys means the stream was
            # purged or trimmed behind the watch's back, which tells a watch nothing.
            if state.messages < len(self._entries):
                raise _WatchLost(
                    f"the stream holds {state.messages} messages for {len(self._entries)} keys"
                    " (purged?)"
                )

    async def _settle(self, watcher: KeyValue.KeyWatcher, watermark: int) -> int:
        """Take the writes that follow within `settle_s` (bounded by `max_settle_s`) as one."""
        deadline = time.monotonic() + self._max_settle_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                entry = await watcher.updates(timeout=min(self._settle_s, remaining))  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                break
            if entry is None:
                break
            watermark = max(watermark, _apply(self._entries, entry))
        return watermark


def _apply(entries: dict[str, bytes], entry: KeyValue.Entry) -> int:
    """Fold one watch entry into the key -> value map; returns its revision."""
    if entry.operation in ("DEL", "PURGE"):
        entries.pop(entry.key, None)
    else:
        entries[entry.key] = entry.value or b""
    return entry.revision or 0


def _same_content(a: RegistryView, b: RegistryView) -> bool:
    return (
        a.dons == b.dons
        and a.configs == b.configs
        and a.nodes == b.nodes
        and a.ignored_keys == b.ignored_keys
    )


# --- the actor --------------------------------------------------------------------------------

VERBS: dict[str, type[Any]] = {
    "measurements": bus.MeasurementsRequest,
    "capability": bus.CapabilityRequest,
    "local-node": bus.LocalNodeRequest,
    "don": bus.DonRequest,
    "trust": bus.TrustRequest,
}


class RegistryActor:
    """Decode, look up in the cache's current view, encode; never raises on bad input."""

    def __init__(self, cache: RegistryCache, *, node: str) -> None:
        self.cache = cache
        self._node = node

    async def answer(self, verb: str, data: bytes) -> bus.RegistryReply:
        try:
            request = bus.REGISTRY_REQUEST_DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            return _internal(f"malformed registry request on verb {verb}: {exc}")
        expected = VERBS.get(verb)
        if expected is None or not isinstance(request, expected):
            return _internal(f"registry verb {verb} cannot answer {type(request).__name__}")
        reply = handle(await self.cache.view(), request, self._node)
        if isinstance(reply, bus.StageError):
            log.debug("registry %s failed: %s", verb, reply.detail)
        return reply

    def endpoint(self, verb: str) -> Handler:
        async def serve(data: bytes, headers: Headers) -> bytes:
            return bus.ENCODER.encode(await self.answer(verb, data))

        return serve


class RegistryService(Service):
    """The micro service plus its cache: stopping stops the watch, then drains the service."""

    def __init__(self, nc: Client, cache: RegistryCache, **kwargs: Any) -> None:
        super().__init__(nc, **kwargs)
        self.cache = cache

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        # The frozen view keeps answering the requests still in flight.
        await self.cache.stop()
        await super().stop(drain_timeout_s)


async def run(
    nc: Client, settings: NodeSettings, *, cache: RegistryCache | None = None
) -> RegistryService:
    """Watch the bucket and serve this node's registry subjects until the service is stopped."""
    cache = cache or RegistryCache(js_domain=settings.js_domain)
    await cache.start(nc)
    actor = RegistryActor(cache, node=settings.node)
    svc = RegistryService(
        nc,
        cache,
        failure_reply=bus.STAGE_FAILED,
        name="relay-registry",
        description="capabilities registry lookups from the relay_registry KV bucket",
        concurrency=settings.concurrency,
        metadata={"don": settings.don, "node": settings.node, "bucket": cache.bucket},
    )
    svc.add_readiness_check("registry", cache.not_loaded)
    try:
        for verb in VERBS:
            await svc.add_endpoint(
                name=verb,
                subject=subjects.registry(settings.don, settings.node, verb),
                queue=subjects.QUEUE_REGISTRY,
                handler=actor.endpoint(verb),
            )
        await svc.start()
    except BaseException:
        await cache.stop()
        raise
    return svc
