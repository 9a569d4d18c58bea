"""The gateway actor: the handler wired to NATS.

Contract with the relay node's ingress (the ingress honours it; tests pin it):
- The gateway publishes the enclave's unchanged JSON-RPC bytes to `subjects.rpc(don, node)` for
  every member `node`, with reply subject `subjects.gateway_reply(don, instance, node, ticket)`.
- The ingress answers exactly once by publishing its JSON-RPC response to that reply subject,
  with header `Relay-Node: <its node address>` (the same string the gateway used in `rpc`).
- The gateway takes the node's identity from the reply subject token, not from the body. A
  `Relay-Node` header that names another node is treated as spoofed and dropped. With NATS
  `allow_responses` permissions a node can only publish to reply subjects it was sent, so it
  cannot answer in another node's name.
- No responders on a node's subject comes back from the server as a `Status: 503` message on the
  same reply subject: that is a failed send for that node (PROTOCOL 6.4 rows 13-15).

Enclaves reach the gateway over HTTP (see `http.py`) or over NATS as a request on
`subjects.gateway(don)` (queue group `gateway`); NATS replies carry the HTTP status that the HTTP
front would have used in header `Relay-Http-Status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from schemas import subjects
from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.handler import (
    GatewayHandler,
    HandlerConfig,
    Membership,
    SendError,
    UserRequest,
)
from workers.gateway.intake import Legacy, parse_user_request, rejection
from workers.gateway.metrics import GatewayMetrics
from workers.runtime import tracing
from workers.runtime.bus import Headers, Service, connection_hooks
from workers.runtime.settings import require_seconds

log = logging.getLogger("relay.gateway.actor")

NODE_HEADER = "Relay-Node"
HTTP_STATUS_HEADER = "Relay-Http-Status"
_NO_RESPONDERS = "503"
# A node flood is dropped by the rate limits after a cheap check; this bounds the backlog of
# messages NATS queues for us meanwhile (beyond it NATS drops and reports a slow consumer).
_REPLY_BACKLOG_BYTES = 64 * 1024 * 1024
_TICKET = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    don: str
    # One gateway replica: the reply subjects of its sends carry it, so replicas never mix answers.
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    # Upstream's cleanup ticker runs every 5 s in G0 (1 s in G3).
    sweep_interval_s: float = 5.0
    # Concurrent user requests served over NATS (each holds a slot until it is answered).
    nats_concurrency: int = 1024
    # SIGTERM: how long in-flight requests may take to finish before they are failed.
    drain_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        # asyncio.sleep(nan) never wakes (no request would ever expire) and 0 spins; a nan drain
        # would never let SIGTERM finish.
        for name in ("sweep_interval_s", "drain_timeout_s"):
            require_seconds(name, getattr(self, name))
        if self.nats_concurrency < 1:
            raise ValueError(f"nats_concurrency must be at least 1, got {self.nats_concurrency}")


class NatsSender:
    """Hands a request to one node: a publish with the per-node, per-request reply subject."""

    def __init__(self, nc: Client, don: str, instance: str) -> None:
        self._nc = nc
        self._don = don
        self._instance = instance

    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        reply = subjects.gateway_reply(self._don, self._instance, node, ticket)
        try:
            # The request's trace (the gateway span is current) goes to every node.
            headers = tracing.inject(None)
            await self._nc.publish(
                subjects.rpc(self._don, node), payload, reply=reply, headers=headers
            )
        except (nats.errors.Error, ValueError) as exc:
            raise SendError(f"publish to {node} failed: {exc!r}") from exc


class GatewayActor:
    def __init__(
        self,
        nc: Client,
        settings: GatewaySettings,
        membership: Membership,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._nc = nc
        self._settings = settings
        self.handler = GatewayHandler(
            membership=membership,
            sender=NatsSender(nc, settings.don, settings.instance),
            config=settings.handler,
            clock=clock,
            metrics=metrics if metrics is not None else GatewayMetrics(settings.don),
        )
        self._reply_prefix = subjects.gateway_replies(settings.don, settings.instance)[:-1]
        self._replies: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._service = Service(
            nc,
            name="relay-gateway",
            description="Confidential relay gateway: fan-out to the relay DON, F+1 quorum",
            concurrency=settings.nats_concurrency,
            metadata={"don": settings.don, "instance": settings.instance},
        )
        self._closing = False
        self._clock = clock
        self._disconnected_at: float | None = None
        self._resending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            hooks = connection_hooks(self._nc)
        except ValueError:
            log.warning("not a bus.connect connection: in-flight requests are not re-sent")
        else:
            hooks.disconnected.append(self._on_disconnected)
            hooks.reconnected.append(self._on_reconnected)
        self._replies = await self._nc.subscribe(
            subjects.gateway_replies(self._settings.don, self._settings.instance),
            cb=self._on_reply,
            pending_bytes_limit=_REPLY_BACKLOG_BYTES,
        )
        await self._service.add_endpoint_with_headers(
            name="rpc",
            subject=subjects.gateway(self._settings.don),
            queue=subjects.QUEUE_GATEWAY,
            handler=self._on_user_request,
            # Only past the service's queue bound (no queue budget): answered, never dropped.
            on_expired=self._overloaded,
        )
        await self._service.start()
        self._sweeper = asyncio.create_task(self._sweep_forever())
        log.info(
            "gateway for DON %s serving (instance %s)", self._settings.don, self._settings.instance
        )

    async def serve(self, body: bytes) -> GatewayReply:
        """One user request body in, the one answer out (the HTTP front's entry)."""
        return await self._serve(body, refuse_when_closing=True)

    async def _serve(self, body: bytes, *, refuse_when_closing: bool) -> GatewayReply:
        parsed = parse_user_request(body)
        if isinstance(parsed, GatewayReply):
            return parsed
        if isinstance(parsed, Legacy):
            return self.handler.legacy_message()
        if self._closing and refuse_when_closing:
            return rejection(parsed.id, ErrorCode.FatalError, "gateway is shutting down")
        return await self.handler.handle(parsed)

    async def stop(self) -> None:
        """Refuse new work, let in-flight requests finish (bounded), then release NATS.

        The NATS front leaves its queue group first, so new requests go to the other replicas
        while this one finishes: the requests NATS had already delivered here are served, not
        refused. Node responses keep arriving until every accepted request is answered.
        """
        if self._closing:
            return
        self._closing = True
        started = asyncio.get_running_loop().time()
        await self._service.stop_intake()
        await self._service.wait_in_flight(self._settings.drain_timeout_s)
        remaining = max(
            0.0, self._settings.drain_timeout_s - (asyncio.get_running_loop().time() - started)
        )
        if not await self.handler.wait_idle(remaining):
            failed = self.handler.fail_all("gateway is shutting down")
            log.error("gateway stopped with %d requests unanswered by the relay DON", failed)
        with contextlib.suppress(ValueError):
            hooks = connection_hooks(self._nc)
            for hook_list, hook in (
                (hooks.disconnected, self._on_disconnected),
                (hooks.reconnected, self._on_reconnected),
            ):
                if hook in hook_list:
                    hook_list.remove(hook)
        if self._resending is not None:
            self._resending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resending
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._replies is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._replies.unsubscribe()
        await self._service.stop(drain_timeout_s=self._settings.drain_timeout_s)

    async def _on_disconnected(self) -> None:
        if self._disconnected_at is None:
            self._disconnected_at = self._clock()

    async def _on_reconnected(self) -> None:
        # In a task: nats-py awaits this callback inside its reconnect logic.
        since, self._disconnected_at = self._disconnected_at, None
        if self._closing or (self._resending is not None and not self._resending.done()):
            return
        self._resending = asyncio.create_task(self._resend(since))

    async def _resend(self, since: float | None) -> None:
        try:
            sends = await self.handler.resend_unanswered(created_before=since)
        except Exception:
            log.exception("re-sending in-flight requests after a reconnect failed")
            return
        if sends:
            log.warning(
                "NATS reconnected: re-sent in-flight requests to %d nodes that had not answered",
                sends,
            )

    def _overloaded(self, data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        parsed = parse_user_request(data)
        request_id = parsed.id if isinstance(parsed, UserRequest) else ""
        reply = rejection(request_id, ErrorCode.LimitExceededError, "too many requests in flight")
        return reply.body, {HTTP_STATUS_HEADER: str(reply.status)}

    async def _on_user_request(self, data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        # Intake stops before closing, so whatever reaches here was accepted: serve it.
        reply = await self._serve(data, refuse_when_closing=False)
        return reply.body, {HTTP_STATUS_HEADER: str(reply.status)}

    async def _on_reply(self, msg: Msg) -> None:
        # Runs serially for the subscription; everything below is synchronous and cheap.
        try:
            self._take_reply(msg)
        except Exception:
            log.exception("dropping a node message that broke the gateway's reply path")

    def _take_reply(self, msg: Msg) -> None:
        parsed = self._parse_reply_subject(msg.subject)
        if parsed is None:
            log.debug("dropping a message on an unexpected subject %r", msg.subject[:200])
            return
        node, ticket = parsed
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            if status == _NO_RESPONDERS:
                self.handler.on_send_failed(node, ticket, "no responders on the node's subject")
            return
        claimed = headers.get(NODE_HEADER)
        if claimed is not None and claimed != node:
            log.warning(
                "dropping a response: %s header %r does not match reply subject node %r",
                NODE_HEADER,
                claimed[:64],
                node,
            )
            return
        self.handler.on_node_response(node, msg.data, ticket=ticket)

    def _parse_reply_subject(self, subject: str) -> tuple[str, int] | None:
        if not subject.startswith(self._reply_prefix):
            return None
        tokens = subject[len(self._reply_prefix) :].split(".")
        if len(tokens) != 2 or _TICKET.fullmatch(tokens[1]) is None:
            return None
        try:
            node = subjects.decode_token(tokens[0])
        except ValueError:
            return None
        return node, int(tokens[1])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                self.handler.sweep()
            except Exception:
                log.exception("the expiry sweep failed; retrying at the next tick")
