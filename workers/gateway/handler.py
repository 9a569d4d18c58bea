"""The gateway handler: request book-keeping between the enclave and the relay DON (PROTOCOL 1.2, G0').

One `GatewayHandler` serves one relay DON. For each user request it checks the id rules, registers
an active request, fans the unchanged request bytes out to every member, and answers the request's
future exactly once: on quorum, on "quorum unobtainable", on fan-out failure, or on expiry.

Node responses arrive through `on_node_response`: membership, the per-node token bucket, decoding
and the active-request lookup, then the global token bucket (upstream checks the global bucket
before the lookup; see the comment there for why we do not). Every way a response can be wrong
(not a member, flooding, garbage, unknown or finished request, duplicate) drops just that
response and never touches another request.

Transport is injected (`Sender`), and so is the clock, so every rule here is testable without NATS
and without sleeping. Each request also gets a `ticket`: the transport puts it in the reply
subject, so a late answer to an earlier request that reused the same id cannot count for the new one.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from schemas import rpc
from workers.gateway import aggregator, bundle, envelope, g3
from workers.gateway.errors import ErrorCode, GatewayReply, wire_message
from workers.gateway.metrics import GatewayMetrics
from workers.gateway.ratelimit import RateLimit, TokenBucket
from workers.runtime.settings import require_seconds

log = logging.getLogger("relay.gateway")

METHOD_SECRETS_GET = rpc.MethodSecretsGet
METHOD_CAPABILITY_EXECUTE = rpc.MethodCapabilityExec
MAX_REQUEST_ID_BYTES = 200


class DonConfigError(ValueError):
    """A DON description the gateway cannot run quorum over."""


@dataclass(frozen=True, slots=True)
class DonConfig:
    """The relay DON as the gateway's quorum arithmetic sees it: its name, F and member addresses."""

    name: str
    f: int
    members: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.f < 0:
            raise DonConfigError(f"DON {self.name!r}: F must be >= 0, got {self.f}")
        if any(not m for m in self.members):
            raise DonConfigError(f"DON {self.name!r}: a member address is empty")
        if len(set(self.members)) != len(self.members):
            raise DonConfigError(f"DON {self.name!r}: member addresses must be unique")
        if len(self.members) < self.f + 1:
            raise DonConfigError(
                f"DON {self.name!r}: {len(self.members)} members cannot reach quorum F+1={self.f + 1}"
            )

    @property
    def quorum(self) -> int:
        return self.f + 1


class MembershipUnavailable(Exception):
    """The DON's members and F are not known (yet): requests fail closed."""


class Membership(Protocol):
    """Where the handler reads the DON's F and members (the registry cache, or a static config)."""

    def current(self) -> DonConfig: ...


class StaticMembership:
    def __init__(self, don: DonConfig) -> None:
        self._don = don

    def current(self) -> DonConfig:
        return self._don


class SendError(Exception):
    """The request could not be handed to a node (no responders, connection down, timeout)."""


class Sender(Protocol):
    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        """Hand `payload` to `node`; answers come back through `on_node_response` with `ticket`."""


@dataclass(frozen=True, kw_only=True)
class HandlerConfig:
    # Upstream's requestTimeoutSec (0 means 30 there; here the default is simply 30).
    request_timeout_s: float = 30.0
    # Bounds one send (G3's nodeSendTimeoutSec), clamped to the request timeout.
    node_send_timeout_s: float = 10.0
    global_rate: RateLimit = field(default_factory=lambda: RateLimit(rate=50.0, burst=10))
    per_node_rate: RateLimit = field(default_factory=lambda: RateLimit(rate=10.0, burst=10))
    # A memory bound: beyond it new requests get LimitExceeded instead of queueing forever.
    max_active_requests: int = 10_000
    # `n1`: G0' (F+1 identical answers); `current`: G3 (a bundle of signed answers, 10.10).
    protocol: Literal["n1", "current"] = "n1"
    # G3's quorumGraceMillis in seconds: how long to wait for more signed answers once F+1 are in
    # (negative: off; clamped to the request timeout).
    quorum_grace_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "node_send_timeout_s"):
            require_seconds(name, getattr(self, name))
        if self.max_active_requests < 1:
            raise ValueError("max_active_requests must be at least 1")
        if self.protocol not in ("n1", "current"):
            raise ValueError(f"protocol must be n1 or current, got {self.protocol!r}")
        if self.quorum_grace_s != self.quorum_grace_s:
            raise ValueError("quorum_grace_s must be a number")


@dataclass(frozen=True, slots=True)
class UserRequest:
    """A validated JSON-RPC request from the enclave, with its unchanged bytes for the nodes."""

    id: str
    method: str
    raw: bytes


class NodeOutcome(enum.Enum):
    """What became of one node message (returned for tests and metrics; the node gets no answer)."""

    ACCEPTED = "accepted"
    UNEXPECTED_NODE = "unexpected_node"
    NODE_RATE_LIMITED = "node_rate_limited"
    GLOBAL_RATE_LIMITED = "global_rate_limited"
    MALFORMED = "malformed"
    UNKNOWN_REQUEST = "unknown_request"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(eq=False)
class _Active:
    request: UserRequest
    ticket: int
    don: DonConfig
    created: float
    future: asyncio.Future[GatewayReply]
    responses: dict[str, envelope.NodeResponse] = field(default_factory=dict)
    collected: dict[str, aggregator.Collected] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    # G3 (protocol current): each answer classified, and the quorum-grace deadline once armed.
    entries: dict[str, bundle.Entry] = field(default_factory=dict)
    grace_deadline: float | None = None

    def reachable(self) -> int:
        return len(self.don.members) - len(self.failed - self.responses.keys())


class _Throttle:
    """At most one log line per `interval_s` per key: floods must not flood the log too."""

    def __init__(self, clock: Callable[[], float], interval_s: float = 1.0) -> None:
        self._clock = clock
        self._interval = interval_s
        self._last: dict[str, float] = {}

    def ready(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        if len(self._last) > 1024:  # keys include node names: keep the map bounded
            self._last.clear()
        self._last[key] = now
        return True


class GatewayHandler:
    def __init__(
        self,
        *,
        membership: Membership,
        sender: Sender,
        config: HandlerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._membership = membership
        self._sender = sender
        self._config = config or HandlerConfig()
        self._clock = clock
        self._metrics = metrics
        self._active: dict[str, _Active] = {}
        self._by_ticket: dict[int, _Active] = {}
        self._tickets = itertools.count(1)
        self._global_bucket = TokenBucket(self._config.global_rate, clock)
        self._node_buckets: dict[str, TokenBucket] = {}
        self._throttle = _Throttle(clock)

    # --- introspection -------------------------------------------------------------------

    @staticmethod
    def methods() -> list[str]:
        return list(rpc.Methods())

    @property
    def active_count(self) -> int:
        return len(self._active)

    def is_active(self, request_id: str) -> bool:
        return request_id in self._active

    # --- user side -----------------------------------------------------------------------

    def legacy_message(self) -> GatewayReply:
        """Upstream's answer to a pre-JSON-RPC gateway message."""
        return self._rejected(
            self._error(
                "",
                ErrorCode.HandlerError,
                "confidential relay handler does not support legacy messages",
            )
        )

    async def handle(self, request: UserRequest) -> GatewayReply:
        """Submit and wait for the one answer (quorum, error, or expiry)."""
        return await (await self.submit(request))

    async def submit(self, request: UserRequest) -> asyncio.Future[GatewayReply]:
        """Register and fan out; the returned future resolves once, when the request is decided."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[GatewayReply] = loop.create_future()
        rejection = self._check_id(request.id)
        if rejection is not None:
            future.set_result(self._rejected(rejection))
            return future
        if len(self._active) >= self._config.max_active_requests:
            future.set_result(
                self._rejected(
                    self._error(
                        request.id, ErrorCode.LimitExceededError, "too many requests in flight"
                    )
                )
            )
            return future
        try:
            don = self._membership.current()
        except MembershipUnavailable as exc:
            log.error("cannot serve request %r: %s", request.id, exc)
            future.set_result(
                self._rejected(
                    self._error(
                        request.id, ErrorCode.FatalError, "relay DON membership is unavailable"
                    )
                )
            )
            return future
        log.debug(
            "handling confidential relay request: method=%s id=%r", request.method, request.id
        )
        active = _Active(
            request=request,
            ticket=next(self._tickets),
            don=don,
            created=self._clock(),
            future=future,
        )
        self._active[request.id] = active
        self._by_ticket[active.ticket] = active
        # A caller that gives up (HTTP client gone) releases the request id at once.
        future.add_done_callback(lambda f: self._forget(active) if f.cancelled() else None)
        try:
            await self._fan_out(active)
        except asyncio.CancelledError:
            # The caller went away mid fan-out: release the id now, not at the next sweep.
            future.cancel()
            raise
        return future

    def _check_id(self, request_id: str) -> GatewayReply | None:
        if request_id == "":
            return self._error("", ErrorCode.HandlerError, "request ID cannot be empty")
        size = len(request_id.encode("utf-8", "surrogatepass"))  # Go's len: bytes
        if size > MAX_REQUEST_ID_BYTES:
            return self._error(
                request_id,
                ErrorCode.HandlerError,
                f"request ID is too long: {size}. max is {MAX_REQUEST_ID_BYTES} characters",
            )
        if request_id in self._active:
            log.error("request id already exists: %r", request_id)
            return self._error(
                request_id, ErrorCode.HandlerError, f"request ID already exists: {request_id}"
            )
        return None

    async def _fan_out(self, active: _Active) -> None:
        await self._send(active, active.don.members)
        if active.future.done():
            return  # decided while sending (fast nodes) or abandoned
        if not self._check_reachable(active):
            return
        log.debug("successfully forwarded request %r to relay nodes", active.request.id)
        if active.failed:
            self._decide(active)

    async def _send(self, active: _Active, nodes: tuple[str, ...] | list[str]) -> None:
        """Send the request to `nodes`, each bounded; a failed send marks that node failed."""
        timeout = min(self._config.node_send_timeout_s, self._config.request_timeout_s)

        async def send_one(node: str) -> None:
            try:
                async with asyncio.timeout(timeout):
                    await self._sender.send(node, active.ticket, active.request.raw)
            except (SendError, TimeoutError, OSError) as exc:
                log.error("error sending request to node %s: %s", node, exc)
                active.failed.add(node)

        await asyncio.gather(*(send_one(node) for node in nodes))

    async def resend_unanswered(self, *, created_before: float | None = None) -> int:
        """After a NATS reconnect: send each request in flight again to the members that have
        not answered it. The server may have lost the request or the answer in a crash, and
        nobody would tell us; without this the request waits out its whole timeout.

        Requests created after `created_before` (during the outage, so their sends were
        buffered by the client and flushed at reconnect) go again only to nodes whose send
        failed. Same ticket, same bytes: an answer to either copy counts once. It is safe for
        the nodes (docs/gateway.md): reads are pure, and a capability call is deduplicated by
        its logical key, so a second copy gets the first outcome, never a second execution.
        Returns how many sends were made.
        """
        sends = 0
        for active in list(self._active.values()):
            if active.future.done():
                continue
            old = created_before is None or active.created <= created_before
            nodes = [
                node
                for node in active.don.members
                if node not in active.responses and (old or node in active.failed)
            ]
            if not nodes:
                continue
            active.failed.difference_update(nodes)  # each gets a fresh chance
            sends += len(nodes)
            await self._send(active, nodes)
            if active.future.done() or not self._check_reachable(active):
                continue
            if active.failed:
                self._decide(active)
        return sends

    def _check_reachable(self, active: _Active) -> bool:
        """Fail the request at once when too few nodes are left to ever reach F+1."""
        if active.reachable() >= active.don.quorum:
            return True
        self._complete(
            active,
            self._error(
                active.request.id, ErrorCode.FatalError, "failed to forward user request to nodes"
            ),
        )
        return False

    # --- node side -----------------------------------------------------------------------

    def on_send_failed(self, node: str, ticket: int, reason: str) -> None:
        """The transport learnt after the send that `node` cannot be reached (e.g. no responders)."""
        active = self._by_ticket.get(ticket)
        if active is None or node not in active.don.members or node in active.failed:
            return
        log.error("error sending request to node %s: %s", node, reason)
        active.failed.add(node)
        if self._check_reachable(active):
            self._decide(active)

    def on_node_response(self, node: str, data: bytes, *, ticket: int | None = None) -> NodeOutcome:
        """Take one node message; never raises, whatever the node sent."""
        try:
            members = self._membership.current().members
        except MembershipUnavailable:
            members = ()
        if node not in members:
            if self._throttle.ready("unexpected:" + node[:64]):
                log.warning("received message from unexpected node %r", node[:64])
            return self._dropped(NodeOutcome.UNEXPECTED_NODE)
        bucket = self._node_buckets.get(node)
        if bucket is None:
            bucket = self._node_buckets[node] = TokenBucket(self._config.per_node_rate, self._clock)
        if not bucket.allow():
            log.debug("node is rate limited: %s", node)
            return self._dropped(NodeOutcome.NODE_RATE_LIMITED)
        try:
            resp = envelope.decode_node_response(data)
        except envelope.MalformedNodeResponse as exc:
            if self._throttle.ready("malformed:" + node):
                log.warning("dropping a malformed response from node %s: %s", node, exc)
            return self._dropped(NodeOutcome.MALFORMED)
        log.debug("handling node response: node=%s id=%r", node, resp.id)
        active = self._active.get(resp.id)
        if active is None:
            log.debug("no pending request found for ID %r", resp.id)
            return self._dropped(NodeOutcome.UNKNOWN_REQUEST)
        if (ticket is not None and ticket != active.ticket) or node not in active.don.members:
            log.debug("response from %s is for an earlier request with id %r", node, resp.id)
            return self._dropped(NodeOutcome.STALE)
        if node in active.responses:
            if self._throttle.ready("duplicate:" + node):
                log.error("duplicate response from node %s, ignoring (id %r)", node, resp.id)
            return self._dropped(NodeOutcome.DUPLICATE)
        # The global budget is charged only for a member's first answer to a live request.
        # Upstream charges it before the lookup; then one member's junk burst (up to its own
        # per-node burst, 10 = the whole global burst by default) drains the global bucket and the
        # honest answers that follow are silently dropped, so the request expires. Junk is already
        # bounded per node by the per-node bucket above.
        if not self._global_bucket.allow():
            log.debug("global relay rate limit exceeded (node %s)", node)
            return self._dropped(NodeOutcome.GLOBAL_RATE_LIMITED)
        if self._config.protocol == "current":
            entry = self._classify(active, node, resp)
            active.responses[node] = resp
            active.entries[node] = entry
            self._decide(active)
            return NodeOutcome.ACCEPTED
        try:
            digest: str | None = envelope.digest(resp)
        except envelope.DigestError as exc:
            log.error(
                "failed to compute digest of response during quorum validation, skipping... "
                "node=%s: %s",
                node,
                exc,
            )
            digest = None
        active.responses[node] = resp
        active.collected[node] = aggregator.Collected(digest=digest)
        self._decide(active)
        return NodeOutcome.ACCEPTED

    def _decide(self, active: _Active) -> None:
        if self._config.protocol == "current":
            self._decide_g3(active, expired=False)
            return
        try:
            decision = aggregator.aggregate(
                active.collected, f=active.don.f, expected=active.reachable()
            )
        except aggregator.QuorumUnobtainable as exc:
            log.error("quorum unobtainable, returning error to user: %s", exc)
            self._complete(active, self._error(active.request.id, ErrorCode.FatalError, str(exc)))
            return
        except Exception:
            log.exception("unexpected aggregation error for request %r", active.request.id)
            self._complete(
                active,
                self._error(
                    active.request.id, ErrorCode.FatalError, "unexpected aggregation error"
                ),
            )
            return
        if isinstance(decision, aggregator.Insufficient):
            log.debug("aggregating responses, waiting for other nodes... (%d)", decision.collected)
            return
        try:
            body = envelope.encode_node_response(active.responses[decision.node])
        except Exception:
            log.exception("failed to encode response for request %r", active.request.id)
            self._complete(
                active,
                self._error(
                    active.request.id,
                    ErrorCode.NodeReponseEncodingError,
                    ErrorCode.NodeReponseEncodingError.label,
                ),
            )
            return
        self._complete(active, GatewayReply(body=body, code=ErrorCode.NoError))

    # --- expiry and shutdown ---------------------------------------------------------------

    def sweep(self) -> int:
        """Expire requests older than the timeout (strictly); returns how many expired.

        G3 also forwards here every request whose quorum-grace deadline has passed with F+1
        signed answers in (upstream's 1 s ticker)."""
        now = self._clock()
        if self._config.protocol == "current":
            return self._sweep_g3(now)
        expired = [
            a for a in self._active.values() if now - a.created > self._config.request_timeout_s
        ]
        for active in expired:
            got, required = len(active.responses), active.don.quorum
            log.debug("request expired without quorum: responseCount=%d required=%d", got, required)
            self._complete(
                active,
                self._error(
                    active.request.id,
                    ErrorCode.RequestTimeoutError,
                    f"request expired: got {got}/{required} responses",
                ),
            )
        return len(expired)

    # --- G3 (protocol current) -------------------------------------------------------------

    @staticmethod
    def _classify(active: _Active, node: str, resp: envelope.NodeResponse) -> bundle.Entry:
        entry = bundle.classify(resp, active.request.method)
        if entry.kind != "signed":
            log.warning(
                "relay node response not bundled: node=%s id=%r kind=%s sample=%s",
                node,
                active.request.id,
                entry.kind,
                entry.sample,
            )
        return entry

    def _counts(self, active: _Active) -> g3.Counts:
        kinds = [e.kind for e in active.entries.values()]
        return g3.Counts(
            signed=kinds.count("signed"),
            errors=kinds.count("error"),
            undecodable=kinds.count("undecodable"),
            members=len(active.don.members),
            reachable=active.reachable(),
        )

    def _decide_g3(self, active: _Active, *, expired: bool) -> None:
        decision = g3.decide(self._counts(active), active.don.f, expired=expired)
        if isinstance(decision, g3.Wait):
            if decision.arm_grace and active.grace_deadline is None:
                grace = g3.grace_seconds(
                    self._config.quorum_grace_s, self._config.request_timeout_s
                )
                active.grace_deadline = self._clock() + grace
            return
        if isinstance(decision, g3.Fail):
            log.error("relay request %r failed: %s", active.request.id, decision.message)
            self._complete(active, self._error(active.request.id, decision.code, decision.message))
            return
        self._forward_g3(active)

    def _forward_g3(self, active: _Active) -> None:
        signed = [
            entry.signed
            for _, entry in sorted(active.entries.items())
            if entry.kind == "signed" and entry.signed is not None
        ]
        try:
            body = bundle.forward_body(active.request.id, active.request.method, signed)
        except bundle.UnknownRelayMethod as exc:
            self._complete(active, self._error(active.request.id, ErrorCode.FatalError, str(exc)))
            return
        except Exception:
            log.exception("failed to encode the bundle for request %r", active.request.id)
            self._complete(
                active,
                self._error(
                    active.request.id,
                    ErrorCode.NodeReponseEncodingError,
                    ErrorCode.NodeReponseEncodingError.label,
                ),
            )
            return
        log.debug("forwarding %d signed responses for %r", len(signed), active.request.id)
        self._complete(active, GatewayReply(body=body, code=ErrorCode.NoError))

    def _sweep_g3(self, now: float) -> int:
        expired = 0
        for active in list(self._active.values()):
            if now - active.created > self._config.request_timeout_s:
                expired += 1
                self._decide_g3(active, expired=True)
            elif (
                active.grace_deadline is not None
                and now >= active.grace_deadline
                and self._counts(active).signed >= active.don.quorum
            ):
                log.debug("quorum grace over for %r: forwarding", active.request.id)
                self._forward_g3(active)
        return expired

    def fail_all(self, message: str) -> int:
        """Answer every active request with a fatal error (shutdown after the drain window)."""
        pending = list(self._active.values())
        for active in pending:
            self._complete(active, self._error(active.request.id, ErrorCode.FatalError, message))
        return len(pending)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait (bounded) until no request is active; True if that happened."""
        futures = [a.future for a in self._active.values()]
        if not futures:
            return True
        _, pending = await asyncio.wait(futures, timeout=timeout_s)
        return not pending

    # --- helpers -----------------------------------------------------------------------------

    def _complete(self, active: _Active, reply: GatewayReply) -> None:
        self._forget(active)
        if active.future.done():
            return
        active.future.set_result(reply)
        log.debug("response sent to user: id=%r code=%s", active.request.id, reply.code.label)
        if self._metrics is not None:
            self._metrics.replied(reply.code, self._clock() - active.created)

    def _forget(self, active: _Active) -> None:
        if self._active.get(active.request.id) is active:
            del self._active[active.request.id]
        self._by_ticket.pop(active.ticket, None)

    def _error(self, request_id: str, code: ErrorCode, message: str) -> GatewayReply:
        body = envelope.encode_gateway_error(request_id, code.rpc_code, wire_message(code, message))
        return GatewayReply(body=body, code=code)

    def _rejected(self, reply: GatewayReply) -> GatewayReply:
        """An answer given before the request became active (no latency to speak of)."""
        if self._metrics is not None:
            self._metrics.replied(reply.code, None)
        return reply

    def _dropped(self, outcome: NodeOutcome) -> NodeOutcome:
        if self._metrics is not None:
            self._metrics.dropped(outcome.value)
        return outcome
