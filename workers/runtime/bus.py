"""The NATS side every actor shares: a connection, a micro service with bounded concurrency, requests.

nats-py runs one callback at a time per subscription, so an endpoint's callback only waits for a
concurrency slot and hands the message to its own task; the reply is published by that task with
`nc.publish` (never `Msg.respond`, which echoes the request's headers). Stopping a service stops
intake first, finishes what is in flight, then drains the connection: nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.micro
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.request import Request as MicroRequest
from nats.micro.service import EndpointStats
from nats.micro.service import Service as MicroService

from schemas import subjects
from workers.runtime import tracing
from workers.runtime.arrival import arrived_at, stamp_arrivals
from workers.runtime.credentials import production_options, redact_url
from workers.runtime.payload import fits, wire_size
from workers.runtime.servers import parse_servers

log = logging.getLogger("relay.bus")

Headers = dict[str, str] | None
Handler = Callable[[bytes, Headers], Awaitable[bytes]]
"""An endpoint handler: request bytes and headers in, reply bytes out."""

HeaderHandler = Callable[[bytes, Headers], Awaitable[tuple[bytes, Headers]]]
"""Like Handler, but it also chooses the reply's headers."""


class StageUnavailable(Exception):
    """Nobody listens on the subject (NATS answered no-responders at once)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders on {subject}")
        self.subject = subject


class NatsConnectError(ConnectionError):
    """The first connection did not succeed in time; `refusal` is what the server said, if it
    said anything (a refused password or TLS identity), else None (nothing answered)."""

    def __init__(self, message: str, refusal: Exception | None) -> None:
        super().__init__(message)
        self.refusal = refusal


MAX_SUBJECT_BYTES = 1024
"""Longest subject we publish to. nats-server refuses a protocol line over its max_control_line
(4 KiB by default) by closing the whole connection, which would cost every request in flight on
it; a subject built from client data (a capability method) is refused here instead."""


class StageTimeout(Exception):
    """The stage did not answer within the timeout."""

    def __init__(self, subject: str, timeout_s: float) -> None:
        super().__init__(f"no reply on {subject} within {timeout_s:.3f}s")
        self.subject = subject
        self.timeout_s = timeout_s


async def connect(
    url: str,
    *,
    actor: str,
    user: str | None = None,
    password: str | None = None,
    connect_timeout_s: float = 5.0,
    initial_timeout_s: float = 10.0,
) -> Client:
    """Connect as one actor: named, with its own reply inbox prefix and our own callbacks.

    Once connected it reconnects forever; the first connection, though, must succeed within
    `initial_timeout_s` (nats-py would otherwise retry it forever), so a mistyped URL fails fast.
    `url` may be a comma-separated server list: nats-py tries each (a dead first server does not
    stop the start) and reconnects to any of them. A malformed list raises `ServerListError`.
    """
    servers = parse_servers(url)

    refusals: list[Exception] = []  # what the server itself said (not socket errors)

    async def on_error(exc: Exception) -> None:
        # The default error_cb prints tracebacks; permission violations deserve a loud line.
        log.error("nats error for actor %s: %s", actor, exc)
        if isinstance(exc, nats.errors.Error):
            refusals[:] = [exc]

    hooks = ConnectionHooks()

    async def on_disconnected() -> None:
        log.info("actor %s disconnected from NATS", actor)
        await hooks.run(hooks.disconnected, actor)

    async def on_reconnected() -> None:
        log.warning("actor %s reconnected to NATS", actor)
        await hooks.run(hooks.reconnected, actor)

    options: dict[str, Any] = {
        "name": f"relay-{actor}",
        "inbox_prefix": subjects.inbox_prefix(actor),
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": connect_timeout_s,
        "allow_reconnect": True,
        # Service.stop drains only once the requests in flight are done (or after 10 s), so the
        # connection's own drain is quick; bound it below systemd's TimeoutStopSec (deploy/).
        "drain_timeout": 10,
    }
    identity = production_options(actor)
    options.update(identity)
    if user is not None and not ({"user_credentials", "nkeys_seed"} & identity.keys()):
        options["user"] = user
        options["password"] = password or ""
    try:
        nc = await asyncio.wait_for(nats.connect(servers, **options), timeout=initial_timeout_s)
        _HOOKS[nc] = hooks
        return nc
    except TimeoutError as exc:
        # Name what the server said: a refused password reads very differently from silence.
        refusal = refusals[0] if refusals else None
        why = f": the server refused: {refusal}" if refusal is not None else ""
        raise NatsConnectError(
            f"actor {actor}: could not connect to NATS at {redact_url(url)} within"
            f" {initial_timeout_s}s{why}",
            refusal,
        ) from exc


Hook = Callable[[], Awaitable[None]]


@dataclass
class ConnectionHooks:
    """What an actor runs when its connection drops and when it is back (after nats-py has
    re-subscribed and flushed what it buffered)."""

    disconnected: list[Hook] = field(default_factory=list)
    reconnected: list[Hook] = field(default_factory=list)

    @staticmethod
    async def run(hooks: list[Hook], actor: str) -> None:
        for hook in list(hooks):
            try:
                await hook()
            except Exception:
                log.exception("a connection hook of actor %s failed", actor)


_HOOKS: weakref.WeakKeyDictionary[Client, ConnectionHooks] = weakref.WeakKeyDictionary()


def connection_hooks(nc: Client) -> ConnectionHooks:
    """The hooks of a connection made by `connect` (ValueError for any other connection)."""
    hooks = _HOOKS.get(nc)
    if hooks is None:
        raise ValueError("connection hooks exist only for connections made by bus.connect")
    return hooks


async def request(
    nc: Client,
    subject: str,
    payload: bytes,
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Request/reply with an explicit timeout; transport failures become typed errors."""
    msg = await request_msg(nc, subject, payload, timeout_s=timeout_s, headers=headers)
    return msg.data


async def request_msg(
    nc: Client,
    subject: str,
    payload: bytes,
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> Msg:
    if timeout_s <= 0:
        raise StageTimeout(subject, timeout_s)
    if len(subject.encode()) > MAX_SUBJECT_BYTES:
        # Nobody can listen on it: answer as NATS would for a subject nobody serves.
        raise StageUnavailable(f"{subject[:64]}... ({len(subject.encode())} bytes)")
    try:
        # The stage learns the trace it serves (a no-op unless tracing is on).
        headers = tracing.inject(headers)
        return await nc.request(subject, payload, timeout=timeout_s, headers=headers)
    except nats.errors.NoRespondersError as exc:
        raise StageUnavailable(subject) from exc
    except nats.errors.TimeoutError as exc:
        raise StageTimeout(subject, timeout_s) from exc


_ACCEPTED_AT: contextvars.ContextVar[float] = contextvars.ContextVar("relay_accepted_at")


def accepted_at() -> float:
    """When the request being handled reached this process (time.monotonic), stamped as nats-py
    queued it, before any wait in that queue or for a concurrency slot: a budget counted from
    here includes every wait (`workers.runtime.arrival`). Outside a handler, now."""
    return _ACCEPTED_AT.get(time.monotonic())


NO_RESPONDERS_BACKOFF_S = 0.05
"""The pause after a no-responders answer: nobody listens right now (a restart?)."""


async def request_pure(
    nc: Client, subject: str, payload: bytes, *, deadline: float, attempt_timeout_s: float
) -> bytes:
    """Request a pure stage (verify, a registry lookup) until it answers or `deadline` passes.

    An attempt that times out is sent again at once: the replica may have died holding it, and
    a pure stage may answer twice without harm. A no-responders answer is retried after a
    short pause, never in a tight loop. The last failure is raised at the deadline.
    """
    last: Exception | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return await request(nc, subject, payload, timeout_s=min(attempt_timeout_s, remaining))
        except StageTimeout as exc:
            last = exc
        except StageUnavailable as exc:
            last = exc
            await asyncio.sleep(min(NO_RESPONDERS_BACKOFF_S, max(0.0, deadline - time.monotonic())))
    raise last if last is not None else StageTimeout(subject, 0.0)


@dataclass
class _ServedCounts:
    """What one endpoint's tasks did: micro cannot see it, its handler returns at accept."""

    completed: int = 0
    errors: int = 0
    expired: int = 0
    too_large: int = 0
    processing_ns: int = 0
    last_error: str = ""


ReplyBuilder = Callable[[bytes, Headers], tuple[bytes, Headers]]
"""Builds a small reply from the request alone (its bytes and headers): what an endpoint answers
when a request expired in the queue or its real reply was too large for the server."""


@dataclass(frozen=True)
class _Endpoint:
    name: str
    subject: str
    queue: str
    handler: HeaderHandler
    queue_budget_s: float | None
    on_expired: ReplyBuilder | None
    on_too_large: ReplyBuilder | None


@dataclass(eq=False)
class _Queued:
    """A request waiting for a concurrency slot."""

    endpoint: _Endpoint
    msg: Msg
    arrived: float
    accepted_ns: int
    timer: asyncio.TimerHandle | None = None


DEFAULT_MAX_QUEUED = 4096
"""Requests an actor holds waiting for a slot; past it a request is answered at once as expired
(the endpoint's `on_expired`), so a flood cannot grow memory or every other request's wait."""


class Service:
    """One actor's `nats.micro` service whose endpoints serve requests concurrently, bounded.

    Each request is stamped when nats-py queues it (`workers.runtime.arrival`), before any wait.
    The endpoint callback never blocks: it starts the request on a free slot, or queues it in
    arrival order. An endpoint with a `queue_budget_s` has each queued request answered by its
    `on_expired` (outside the slots) when the budget since arrival runs out, so a request that
    waits behind slow ones gets a prompt answer at its deadline, not a fresh budget when a slot
    frees. A reply larger than the server's max_payload is replaced by the endpoint's
    `on_too_large` (else `failure_reply`), so the requester learns at once.

    micro's own handler only accepts a request, so the STATS it would report measure accepting;
    the stats handler puts in what the tasks measured instead: `processing_time` from arrival to
    reply published, its average over completed requests, and handler failures in `num_errors`
    with the exception's type (never its text, which may hold request data) as `last_error`.
    `data` carries `in_flight`, `queued`, `expired` and `too_large`.
    """

    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        description: str,
        version: str = "0.1.0",
        concurrency: int = 64,
        metadata: dict[str, str] | None = None,
        failure_reply: bytes | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """`failure_reply` is sent when a handler raises or its reply cannot be published (too
        large for the server, say), so the requester learns at once; None sends nothing."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_queued < 0:
            raise ValueError("max_queued must be at least 0")
        self._nc = nc
        self._name = name
        self._description = description
        self._version = version
        self._metadata = metadata or {}
        self._failure_reply = failure_reply
        self._free = concurrency
        self._max_queued = max_queued
        self._last_overflow_log = -1e9
        self._queued: OrderedDict[int, _Queued] = OrderedDict()
        self._sequence = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[_Endpoint] = []
        self._micro: MicroService | None = None
        self._stopping = False
        self._intake_stopped = False
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._counts: dict[str, _ServedCounts] = {}
        self._in_flight_by_endpoint: dict[str, int] = {}
        self._started = False
        self._readiness_checks: dict[str, Callable[[], str | None]] = {}

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` after the requests in flight finished, before the connection drains."""
        self._stop_hooks.append(hook)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._queued)

    def add_readiness_check(self, name: str, check: Callable[[], str | None]) -> None:
        """Add a condition for `readiness`: `check()` returns None when met, else why not."""
        self._readiness_checks[name] = check

    def readiness(self) -> dict[str, str]:
        """Each readiness condition, "ok" or why not (the health probe's `/readyz`): the server
        acknowledged the subscriptions, intake is open, and every added check passes."""
        if self._intake_stopped or self._stopping:
            service = "draining"
        elif not self._started:
            service = "starting"
        else:
            service = "ok"
        checks = {"service": service}
        for name, check in self._readiness_checks.items():
            checks[name] = check() or "ok"
        return checks

    async def add_endpoint(
        self,
        *,
        name: str,
        subject: str,
        queue: str,
        handler: Handler,
        queue_budget_s: float | None = None,
        on_expired: Callable[[bytes, Headers], bytes] | None = None,
        on_too_large: Callable[[bytes, Headers], bytes] | None = None,
    ) -> None:
        """Serve `subject` in queue group `queue`; the handler's bytes are the reply."""

        async def with_no_headers(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
            return await handler(data, headers), None

        await self.add_endpoint_with_headers(
            name=name,
            subject=subject,
            queue=queue,
            handler=with_no_headers,
            queue_budget_s=queue_budget_s,
            on_expired=_no_headers(on_expired),
            on_too_large=_no_headers(on_too_large),
        )

    async def add_endpoint_with_headers(
        self,
        *,
        name: str,
        subject: str,
        queue: str,
        handler: HeaderHandler,
        queue_budget_s: float | None = None,
        on_expired: ReplyBuilder | None = None,
        on_too_large: ReplyBuilder | None = None,
    ) -> None:
        """Like `add_endpoint`; with `queue_budget_s`, `on_expired` answers a request that
        waited that long (since arrival) for a slot; `on_too_large` answers instead of a reply
        over the server's max_payload."""
        if queue_budget_s is not None and (on_expired is None or not queue_budget_s > 0):
            raise ValueError("queue_budget_s needs on_expired and a positive budget")
        endpoint = _Endpoint(
            name, subject, queue, handler, queue_budget_s, on_expired, on_too_large
        )
        self._pending.append(endpoint)
        if self._micro is not None:
            await self._register(endpoint)

    async def start(self) -> None:
        self._micro = await nats.micro.add_service(
            self._nc,
            name=self._name,
            version=self._version,
            description=self._description,
            metadata=self._metadata,
            stats_handler=self._endpoint_stats,
        )
        for endpoint in self._pending:
            await self._register(endpoint)
        # Two round trips: nats-py queues SUB for its background writer while flush() may reach
        # the socket first, so after one PONG the server may not have the subscriptions yet (a
        # "ready" actor would then answer no-responders). The second PING follows the SUBs.
        await self._nc.flush()
        await self._nc.flush()
        self._started = True

    async def _register(self, endpoint: _Endpoint) -> None:
        assert self._micro is not None
        self._counts.setdefault(endpoint.name, _ServedCounts())
        self._in_flight_by_endpoint.setdefault(endpoint.name, 0)

        async def on_request(req: MicroRequest) -> None:
            # Runs serially per endpoint, so it never waits: start or queue, then return.
            msg: Msg = req._msg  # the reply subject is needed; micro keeps the Msg private
            self._accept(endpoint, msg)

        await self._micro.add_endpoint(
            name=endpoint.name,
            subject=endpoint.subject,
            queue_group=endpoint.queue,
            handler=on_request,
        )
        for micro_endpoint in getattr(self._micro, "_endpoints", []):
            sub: Subscription | None = getattr(micro_endpoint, "_subscription", None)
            if getattr(micro_endpoint, "_name", None) == endpoint.name and sub is not None:
                stamp_arrivals(sub)

    def _accept(self, endpoint: _Endpoint, msg: Msg) -> None:
        now = time.monotonic()
        arrived = arrived_at(msg) or now
        entry = _Queued(endpoint, msg, arrived, time.perf_counter_ns() - int((now - arrived) * 1e9))
        if self._free > 0:
            self._start(entry)
            return
        if len(self._queued) >= self._max_queued:
            if now - self._last_overflow_log >= 1.0:  # a flood must not flood the log too
                self._last_overflow_log = now
                log.warning(
                    "%s: %d requests queued, the bound: answering new ones as expired",
                    self._name,
                    len(self._queued),
                )
            self._expire(entry)
            return
        key = next(self._sequence)
        self._queued[key] = entry
        budget = endpoint.queue_budget_s
        if budget is not None:
            loop = asyncio.get_running_loop()
            # loop.time() is time.monotonic() on asyncio and uvloop alike.
            entry.timer = loop.call_at(
                loop.time() + (arrived + budget - now), self._expire_queued, key
            )

    def _start(self, entry: _Queued) -> None:
        self._free -= 1
        if entry.timer is not None:
            entry.timer.cancel()
        self._in_flight_by_endpoint[entry.endpoint.name] += 1
        context = contextvars.copy_context()
        # The handler reads the arrival time via accepted_at(): its budget includes every wait.
        context.run(_ACCEPTED_AT.set, entry.arrived)
        task = asyncio.get_running_loop().create_task(self._serve(entry), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expire_queued(self, key: int) -> None:
        entry = self._queued.pop(key, None)
        if entry is not None:
            self._expire(entry)

    def _expire(self, entry: _Queued) -> None:
        """Answer `entry` without a slot: its budget ran out in the queue (or the queue is full)."""
        context = contextvars.copy_context()
        context.run(_ACCEPTED_AT.set, entry.arrived)  # on_expired reads accepted_at() too
        task = asyncio.get_running_loop().create_task(self._answer_expired(entry), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_expired(self, entry: _Queued) -> None:
        endpoint, msg = entry.endpoint, entry.msg
        counts = self._counts[endpoint.name]
        counts.expired += 1
        log.debug("%s: a request expired waiting for a slot", endpoint.subject)
        try:
            if endpoint.on_expired is not None:
                reply, headers = endpoint.on_expired(msg.data, msg.headers)
                await self._publish(endpoint, msg, reply, headers)
            else:
                await self._send_failure(msg, endpoint.subject)
        except Exception as exc:
            log.exception("answering an expired request on %s failed", endpoint.subject)
            counts.errors += 1
            counts.last_error = type(exc).__name__

    def _release(self) -> None:
        self._free += 1
        while self._free > 0 and self._queued:
            _, entry = self._queued.popitem(last=False)
            self._start(entry)

    async def _serve(self, entry: _Queued) -> None:
        endpoint, msg = entry.endpoint, entry.msg
        counts = self._counts[endpoint.name]
        try:
            try:
                if tracing.enabled():
                    reply, headers = await self._traced(endpoint, msg)
                else:
                    reply, headers = await endpoint.handler(msg.data, msg.headers)
            except Exception as exc:
                # A handler bug must not kill the endpoint nor leak exception text to a peer.
                log.exception("handler for %s failed", endpoint.subject)
                counts.errors += 1
                counts.last_error = type(exc).__name__
                await self._send_failure(msg, endpoint.subject)
                return
            await self._publish(endpoint, msg, reply, headers)
        finally:
            counts.completed += 1
            counts.processing_ns += time.perf_counter_ns() - entry.accepted_ns
            self._in_flight_by_endpoint[endpoint.name] -= 1
            self._release()

    async def _publish(self, endpoint: _Endpoint, msg: Msg, reply: bytes, headers: Headers) -> None:
        """Publish the reply, or a small one in its place when the server would refuse it."""
        if not msg.reply:
            return
        counts = self._counts[endpoint.name]
        if not fits(self._nc, reply, headers):
            counts.too_large += 1
            log.error(
                "the reply on %s is %d bytes, over the server's max_payload of %d: answering"
                " the fallback instead",
                endpoint.subject,
                wire_size(reply, headers),
                self._nc.max_payload,
            )
            if endpoint.on_too_large is None:
                await self._send_failure(msg, endpoint.subject)
                return
            reply, headers = endpoint.on_too_large(msg.data, msg.headers)
            if not fits(self._nc, reply, headers):
                log.error("the fallback reply on %s is too large too", endpoint.subject)
                await self._send_failure(msg, endpoint.subject)
                return
        try:
            await self._nc.publish(msg.reply, reply, headers=headers)
        except Exception as exc:
            log.exception("could not publish the reply for %s", endpoint.subject)
            counts.errors += 1
            counts.last_error = type(exc).__name__
            await self._send_failure(msg, endpoint.subject)

    async def _traced(self, endpoint: _Endpoint, msg: Msg) -> tuple[bytes, Headers]:
        """The handler inside a server span continuing the request's trace (or a new one)."""
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": endpoint.subject,
            **self._metadata,
        }
        with tracing.span(
            f"{self._name} {endpoint.name}",
            parent=msg.headers or {},
            kind=tracing.SERVER,
            attributes=attributes,
        ):
            return await endpoint.handler(msg.data, msg.headers)

    async def _send_failure(self, msg: Msg, subject: str) -> None:
        if self._failure_reply is None or not msg.reply:
            return
        try:
            await self._nc.publish(msg.reply, self._failure_reply)
        except Exception:
            log.exception("could not publish the failure reply for %s", subject)

    def _endpoint_stats(self, stats: EndpointStats) -> dict[str, int]:
        """micro's stats handler: replace its accept-time figures with the tasks' own."""
        counts = self._counts.get(stats.name)
        if counts is None:
            return {}
        stats.processing_time = counts.processing_ns
        stats.average_processing_time = (
            counts.processing_ns // counts.completed if counts.completed else 0
        )
        stats.num_errors = counts.errors
        stats.last_error = counts.last_error
        return {
            "in_flight": self._in_flight_by_endpoint.get(stats.name, 0),
            "queued": sum(1 for q in self._queued.values() if q.endpoint.name == stats.name),
            "expired": counts.expired,
            "too_large": counts.too_large,
        }

    async def stop_intake(self) -> None:
        """Leave the queue groups: new requests go to other replicas; the ones already delivered
        to us are still accepted and served. Idempotent; `stop` does it first anyway."""
        if self._intake_stopped:
            return
        self._intake_stopped = True
        if self._micro is not None:
            for endpoint in list(getattr(self._micro, "_endpoints", [])):
                sub: Subscription | None = getattr(endpoint, "_subscription", None)
                if sub is not None:
                    try:
                        # Drain processes the messages already delivered to us, then unsubscribes.
                        await sub.drain()  # type: ignore[no-untyped-call]
                    except Exception:
                        log.exception("could not drain an endpoint of %s", self._name)

    async def wait_in_flight(self, timeout_s: float) -> bool:
        """Wait (bounded) until every accepted request is answered; False if some are not."""
        await asyncio.sleep(0)  # requests just accepted get their tasks going
        deadline = time.monotonic() + timeout_s
        # Queued requests start as running ones finish, so waiting on the tasks covers both.
        while self._tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left, return_when=asyncio.FIRST_COMPLETED)
        return not self._tasks and not self._queued

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop intake, finish the requests in flight (bounded), then drain the connection."""
        if self._stopping:
            return
        self._stopping = True
        await self.stop_intake()
        if not await self.wait_in_flight(drain_timeout_s):
            while self._queued:  # never started: answered as expired rather than dropped
                _, entry = self._queued.popitem(last=False)
                if entry.timer is not None:
                    entry.timer.cancel()
                self._expire(entry)
            for task in set(self._tasks):
                if not task.done():
                    log.error("%s: a request was still running at shutdown", self._name)
                    task.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=1.0)
        for hook in self._stop_hooks:
            try:
                await hook()
            except Exception:
                log.exception("%s: a stop hook failed", self._name)
        if not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception:
                log.exception("could not drain the connection of %s", self._name)


def _no_headers(build: Callable[[bytes, Headers], bytes] | None) -> ReplyBuilder | None:
    if build is None:
        return None

    def with_no_headers(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        return build(data, headers), None

    return with_no_headers
