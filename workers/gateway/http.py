"""The HTTP front: enclaves POST one JSON-RPC request and get the quorum answer (PROTOCOL 2.6).

Statuses follow the gateway error-code table (200, 400, 409, 429, 500, 504). Bodies larger than
the limit get 413 with a JSON-RPC parse error, before any of it reaches the handler. `GET
/healthz` and `/readyz` answer 200 while the gateway can serve and 503 otherwise, for load
balancers; `/livez` 200 while its NATS connection is not closed (docs/operations.md).

The front cannot be starved by clients that hold connections (`HttpLimits`): a connection must
send a request's headers within `header_timeout_s` of opening, its body within `read_timeout_s`
after the headers, and the next request's headers within `keepalive_timeout_s` of the previous
answer; otherwise it is closed. At most `max_connections` are open at once, a number kept below
the process's file-descriptor limit (`connection_cap`): when a new one arrives at the cap, the
connection idle the longest is closed to make room, so new clients are served while idle ones
are shed. A client that goes away mid-body is counted, not logged as an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from opentelemetry import metrics

from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.intake import rejection
from workers.runtime import health, tracing
from workers.runtime.settings import require_seconds

log = logging.getLogger("relay.gateway.http")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 4096
_CHUNK = 64 * 1024
_W3C = ("traceparent", "tracestate")

Serve = Callable[[bytes], Awaitable[GatewayReply]]


def connection_cap(requested: int | None, fd_limit: int) -> int:
    """The most HTTP connections to hold under a file-descriptor limit of `fd_limit`.

    An eighth of the descriptors (at least 32) stay for everything else: the NATS connection,
    the listening socket, logs, the registry watch. `None` asks for the default, lowered to fit
    the limit; a number that does not fit is a ValueError (the gateway refuses to start).
    """
    room = fd_limit - max(32, fd_limit // 8)
    if room < 1:
        raise ValueError(f"the file-descriptor limit {fd_limit} leaves no room for connections")
    if requested is None:
        return min(DEFAULT_MAX_CONNECTIONS, room)
    if requested < 1:
        raise ValueError(f"max_connections must be at least 1, got {requested}")
    if requested > room:
        raise ValueError(
            f"max_connections {requested} does not fit the file-descriptor limit {fd_limit}"
            f" (at most {room}); raise LimitNOFILE / ulimit -n or lower --max-connections"
        )
    return requested


def fd_limit() -> int:
    """This process's soft RLIMIT_NOFILE (what accept() runs into)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    """Timeouts and the connection cap of the HTTP front (None: the default under the fd limit)."""

    header_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    max_connections: int | None = None

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "read_timeout_s", "keepalive_timeout_s"):
            require_seconds(name, getattr(self, name))


@dataclass(eq=False)
class _Connection:
    handler: RequestHandler
    busy: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass
class HttpCounts:
    """What the front did with connections (also exported as OpenTelemetry counters)."""

    closed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    client_disconnected: int = 0
    peak_connections: int = 0


class _TrackingServer(web.Server):
    """aiohttp's low-level server, telling the front when a connection opens and closes."""

    def __init__(self, front: HttpFront, **kwargs: object) -> None:
        super().__init__(front._handle, **kwargs)  # type: ignore[arg-type]
        self._front = front

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._front._opened(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._front._lost(handler)


class HttpFront:
    def __init__(
        self,
        serve: Serve,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        ready: Callable[[], bool] = lambda: True,
        live: Callable[[], bool] = lambda: True,
        limits: HttpLimits | None = None,
        meter: metrics.Meter | None = None,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self._serve = serve
        self._host = host
        self._port = port
        self._path = path
        self._max_body = max_body_bytes
        self._ready = ready
        self._live = live
        self._limits = limits or HttpLimits()
        self._cap = connection_cap(self._limits.max_connections, fd_limit())
        self._connections: OrderedDict[RequestHandler, _Connection] = OrderedDict()
        self.counts = HttpCounts()
        meter = meter or metrics.get_meter("relay.gateway", "0.1.0")
        self._closed_counter = meter.create_counter(
            "confidential_relay_gateway_http_connections_closed"
        )
        self._disconnect_counter = meter.create_counter(
            "confidential_relay_gateway_http_client_disconnected"
        )
        # aiohttp's own idle timer only backs ours up: it must never fire first.
        backstop = max(self._limits.header_timeout_s, self._limits.keepalive_timeout_s) + 5.0
        self._server = _TrackingServer(self, keepalive_timeout=backstop, access_log=None)
        self._runner = web.ServerRunner(self._server, access_log=None)
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        for address in self._runner.addresses:
            return int(address[1])
        raise RuntimeError("the HTTP front is not listening")

    @property
    def max_connections(self) -> int:
        return self._cap

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        log.info(
            "gateway HTTP front listening on %s:%d: at most %d connections (file-descriptor"
            " limit %d); header, body and keep-alive timeouts %.1f/%.1f/%.1f s",
            self._host,
            self.port,
            self._cap,
            fd_limit(),
            self._limits.header_timeout_s,
            self._limits.read_timeout_s,
            self._limits.keepalive_timeout_s,
        )

    async def stop_listening(self) -> None:
        """Close the listening socket; requests already accepted keep running."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.stop_listening()
        await self._runner.cleanup()

    # --- connections ---------------------------------------------------------------------

    def _opened(self, handler: RequestHandler) -> None:
        if len(self._connections) >= self._cap and not self._evict_idle():
            # Every held connection is serving a request: this one cannot be taken now.
            self._close(handler, "over_capacity")
            return
        conn = _Connection(handler)
        self._connections[handler] = conn
        self.counts.peak_connections = max(self.counts.peak_connections, len(self._connections))
        self._arm(conn, self._limits.header_timeout_s, "header_timeout")

    def _lost(self, handler: RequestHandler) -> None:
        conn = self._connections.pop(handler, None)
        if conn is not None and conn.timer is not None:
            conn.timer.cancel()

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest (the first one not serving); False if none."""
        for conn in self._connections.values():
            if not conn.busy:
                self._forget(conn.handler)
                self._close(conn.handler, "evicted_at_capacity")
                return True
        return False

    def _arm(self, conn: _Connection, timeout_s: float, reason: str) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_later(timeout_s, self._expire, conn, reason)

    def _expire(self, conn: _Connection, reason: str) -> None:
        conn.timer = None
        if not conn.busy and self._connections.get(conn.handler) is conn:
            self._forget(conn.handler)
            self._close(conn.handler, reason)

    def _forget(self, handler: RequestHandler) -> None:
        conn = self._connections.pop(handler, None)
        if conn is not None and conn.timer is not None:
            conn.timer.cancel()

    def _close(self, handler: RequestHandler, reason: str) -> None:
        self.counts.closed[reason] += 1
        self._closed_counter.add(1, {"reason": reason})
        log.debug("closing an HTTP connection: %s", reason)
        handler.force_close()

    def _busy(self, request: web.BaseRequest, busy: bool) -> None:
        conn = self._connections.get(request.protocol)
        if conn is None:
            return
        conn.busy = busy
        if busy:
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
        else:
            self._connections.move_to_end(conn.handler)  # now the most recently idle
            self._arm(conn, self._limits.keepalive_timeout_s, "keepalive_timeout")

    # --- requests --------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._busy(request, True)
        try:
            if request.path == "/healthz" and request.method in ("GET", "HEAD"):
                return self._healthz()
            if request.path in _PROBES and request.method in ("GET", "HEAD"):
                return self._probe(request.path)
            if request.path != self._path:
                return web.Response(status=404)
            if request.method != "POST":
                return web.Response(status=405, headers={"Allow": "POST"})
            return await self._post(request)
        finally:
            self._busy(request, False)

    async def _post(self, request: web.BaseRequest) -> web.StreamResponse:
        too_large = rejection(
            "",
            ErrorCode.UserMessageParseError,
            f"request body is larger than {self._max_body} bytes",
        )
        if request.content_length is not None and request.content_length > self._max_body:
            return _respond(too_large.body, 413, close=True)
        try:
            async with asyncio.timeout(self._limits.read_timeout_s):
                body = await self._read_body(request)
        except TimeoutError:
            self._forget(request.protocol)
            self._close(request.protocol, "read_timeout")
            return web.Response(status=408, headers={"Connection": "close"})
        except (ConnectionError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            # The client went away mid-body: nothing to answer, nobody to tell. Counted.
            self.counts.client_disconnected += 1
            self._disconnect_counter.add(1)
            log.debug("client disconnected mid-body: %s", type(exc).__name__)
            return web.Response(status=400, headers={"Connection": "close"})
        if body is None:
            return _respond(too_large.body, 413, close=True)
        try:
            if tracing.enabled():
                # One trace per request from here (or from the enclave's traceparent, if sent).
                parent = {k.lower(): v for k, v in request.headers.items() if k.lower() in _W3C}
                with tracing.span("relay-gateway http", parent=parent, kind=tracing.SERVER):
                    reply = await self._serve(body)
            else:
                reply = await self._serve(body)
        except Exception:
            # Nothing below should raise; if it does, the enclave gets a fixed text, the log the rest.
            log.exception("serving a gateway request failed")
            reply = rejection("", ErrorCode.FatalError, "internal error")
        return _respond(reply.body, reply.status)

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        """The body, or None once it passes the limit (the rest is not read)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _healthz(self) -> web.Response:
        ok = self._ready()
        return web.Response(
            body=json.dumps({"status": "ok" if ok else "unavailable"}).encode(),
            status=200 if ok else 503,
            content_type="application/json",
        )

    def _probe(self, path: str) -> web.Response:
        """The probes every actor serves (docs/operations.md), here on the front's own port."""
        if path == "/livez":
            checks = {"gateway": health.OK if self._live() else "NATS connection closed"}
        else:
            checks = {"gateway": health.OK if self._ready() else "cannot serve"}
        body, status = health.body("gateway", checks)
        return web.Response(body=body, status=status, content_type="application/json")


_PROBES = ("/livez", "/readyz")


def _respond(body: bytes, status: int, *, close: bool = False) -> web.Response:
    headers = {"Connection": "close"} if close else None
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)
