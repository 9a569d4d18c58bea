"""The ingress actor: one JSON-RPC request in, one Go-identical JSON-RPC response out.

It validates the envelope and params exactly as the Go relay node does (PROTOCOL 2.5, in that
order of evaluation), recomputes the attestation binding, and orchestrates the other stages
(registry, verifier, dispatch) under one deadline per request. Pure stages (registry lookups,
verification, secrets reads) are retried on another replica while the deadline allows; capability
execution is attempted once (the dispatch actor deduplicates it anyway).

Under `RELAY_PROTOCOL=current` (PROTOCOL 10) `_serve_current` takes over after the envelope:
the current binding (DomainHash v2), the same attestation, then the EnclaveConfig and
Workflow-DON checks against the registry's trust anchors, the response memo, dispatch and the
node's signature (`workers/ingress/current.py`, `workers/ingress/memo.py`).

Every error goes through `_error`: the full detail to the log, the code to the metrics, and on the
wire Go's message, except -32603 which is always "internal error".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec
from nats.aio.client import Client

from schemas import bus, current, rpc, subjects
from schemas.gojson import GoJSONError
from workers.ingress.current import (
    CurrentParams,
    CurrentProtocol,
    answers,
    dispatch_params,
    key_mismatch,
    kind_of,
    memo_key,
    open_current,
    sign_result,
)
from workers.ingress.memo import MemoNoResult, MemoUnavailable, MemoWaitTimeout
from workers.protocol import binding, compute_request, enclave_config, signed
from workers.registry.actor import NO_MEASUREMENTS
from workers.registry.client import RegistryLookups, add_readiness, open_registry
from workers.runtime import tracing
from workers.runtime.bus import (
    Headers,
    Service,
    StageTimeout,
    StageUnavailable,
    accepted_at,
    request,
    request_pure,
)
from workers.runtime.settings import NodeSettings
from workers.runtime.telemetry import RelayMetrics

log = logging.getLogger("relay.ingress")

NODE_HEADER = "Relay-Node"
"""Header on every node response: the answering node's address (the gateway counts per node)."""

_T = TypeVar("_T")


class Stages(Protocol):
    """The other actors of this node, as the ingress sees them (NATS in production)."""

    async def measurements(self, deadline: float) -> bus.Measurements | bus.StageError: ...

    async def verify(self, req: bus.VerifyRequest, deadline: float) -> bus.VerifyReply: ...

    async def dispatch(self, req: bus.DispatchRequest, deadline: float) -> bus.DispatchReply: ...


class _Failure(Exception):
    """An early exit with a JSON-RPC error (internal to this module)."""

    def __init__(self, code: int, message: str, detail: str | None = None) -> None:
        super().__init__(detail or message)
        self.code = code
        self.message = message
        self.detail = detail or message


def _internal(detail: str) -> _Failure:
    return _Failure(rpc.ErrInternal, rpc.INTERNAL_ERROR_MESSAGE, detail)


def decode_attestation(text: str) -> bytes:
    """base64.StdEncoding as Go decodes it: strict padding, but CR and LF are skipped."""
    try:
        return binding.go_base64_decode(text)
    except binding.GoBase64Error as exc:
        raise _internal(f"failed to decode attestation: {exc.message}") from exc


_HEADER_ALLOWANCE = 256
"""Room left for the reply's headers (`Relay-Node: <node>`) when a fallback must fit."""

UNSUPPORTED_METHOD_LABEL = "unsupported"
"""The metrics' `method` for any method the relay does not serve, so that a client cannot mint
one time series per made-up method name (each up to a megabyte long)."""


class Ingress:
    def __init__(
        self,
        stages: Stages,
        *,
        settings: NodeSettings,
        metrics: RelayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        signing: CurrentProtocol | None = None,
    ) -> None:
        if (settings.protocol == "current") != (signing is not None):
            raise ValueError("RELAY_PROTOCOL=current needs its key, trust lookup and memo")
        self._current = signing
        self._stages = stages
        self._settings = settings
        self._metrics = metrics
        self._clock = clock

    async def handle(self, raw: bytes, *, received_at: float | None = None) -> bytes:
        """Answer one request; never raises, whatever the bytes. The budget runs from
        `received_at` (on this clock), when given: time spent queued counts against it."""
        started = self._clock() if received_at is None else received_at
        request_id, method = "", ""
        outcome_code: int | None = None
        try:
            try:
                envelope = rpc.decode_request(raw)
            except GoJSONError as exc:
                raise _Failure(rpc.ErrParse, exc.message) from exc
            request_id, method = envelope.id, envelope.method
            tracing.set_attribute("jsonrpc.request_id", request_id[:200])  # client text: bounded
            log.debug("received message from gateway", extra={"request_id": request_id})
            result = await self._serve(envelope, started + self._settings.request_timeout_s)
            response = rpc.encode_response(id=request_id, method=method, result=result)
        except _Failure as failure:
            outcome_code = failure.code
            response = self._error(request_id, method, failure)
        except Exception as exc:  # a bug must still produce a sanitised, well-formed answer
            log.exception("unexpected ingress failure")
            outcome_code = rpc.ErrInternal
            response = self._error(request_id, method, _internal(f"unexpected: {exc!r}"))
        self._record(method, outcome_code, started)
        return response

    def expired(self, raw: bytes, *, received_at: float) -> bytes:
        """The answer to a request whose budget ran out while it waited for a concurrency slot
        (PROTOCOL 2.5: every request is answered): -32603, or the envelope's own parse error.
        Nothing is verified or dispatched; it costs one envelope decode."""
        waited = self._clock() - received_at
        try:
            envelope = rpc.decode_request(raw)
        except GoJSONError as exc:
            failure = _Failure(rpc.ErrParse, exc.message)
            request_id, method = "", ""
        else:
            request_id, method = envelope.id, envelope.method
            failure = _internal(
                f"request not served: it waited {waited:.3f}s for a concurrency slot"
                " (its budget ran out, or the queue was full)"
            )
        self._record(method, failure.code, received_at)
        return self._error(request_id, method, failure)

    def too_large(self, raw: bytes, *, limit: int) -> bytes:
        """-32603 in place of an answer over the server's max_payload (`limit`): id and method
        echoed while they fit, else dropped (method first), so an answer always leaves."""
        try:
            envelope = rpc.decode_request(raw)
            request_id, method = envelope.id, envelope.method
        except GoJSONError:
            request_id, method = "", ""
        failure = _internal(f"the response would exceed the server's max_payload of {limit} bytes")
        reply = self._error(request_id, method, failure)
        for smaller_id, smaller_method in ((request_id, ""), ("", "")):
            if len(reply) + _HEADER_ALLOWANCE <= limit:
                break
            reply = rpc.encode_error_response(
                id=smaller_id,
                method=smaller_method,
                code=rpc.ErrInternal,
                message=rpc.INTERNAL_ERROR_MESSAGE,
            )
        return reply

    def _record(self, method: str, outcome_code: int | None, started: float) -> None:
        if self._metrics is None:
            return
        self._metrics.record_request(
            # The method is client text: only the two real ones become their own series.
            method=method if method in rpc.METHODS else UNSUPPORTED_METHOD_LABEL,
            outcome="error" if outcome_code is not None else "success",
            error_code=outcome_code,
            latency_ms=(self._clock() - started) * 1000.0,
            gateway_id=self._settings.gateway_id,
        )
        if outcome_code is None:
            self._metrics.success(self._settings.gateway_id)

    def _error(self, request_id: str, method: str, failure: _Failure) -> bytes:
        log.error(
            "request error",
            extra={"request_id": request_id, "errorCode": failure.code, "err": failure.detail},
        )
        if self._metrics is not None:
            self._metrics.internal_error(self._settings.gateway_id, failure.code)
        message = rpc.INTERNAL_ERROR_MESSAGE if failure.code == rpc.ErrInternal else failure.message
        return rpc.encode_error_response(
            id=request_id, method=method, code=failure.code, message=message
        )

    async def _serve(self, envelope: rpc.Request, deadline: float) -> bytes:
        if envelope.method not in rpc.METHODS:
            raise _Failure(rpc.ErrMethodNotFound, f"unsupported method: {envelope.method}")
        if envelope.params is None:
            raise _Failure(rpc.ErrInvalidParams, "missing params")
        if self._current is not None:
            return await self._serve_current(self._current, envelope, envelope.params, deadline)
        try:
            bound = binding.bind(envelope.method, envelope.params)
        except GoJSONError as exc:
            raise _Failure(rpc.ErrInvalidParams, exc.message) from exc
        await self._attest(bound, deadline)

        self._within_budget("dispatch", deadline)
        dispatched = await self._stage(
            "dispatch",
            self._stages.dispatch(
                bus.DispatchRequest(
                    request_id=envelope.id,
                    method=envelope.method,
                    params=msgspec.Raw(bound.params_json),
                ),
                deadline,
            ),
        )
        if isinstance(dispatched, bus.StageError):
            raise _Failure(dispatched.code, dispatched.message, dispatched.detail)
        return bytes(dispatched.result)

    async def _attest(self, bound: binding.Bound, deadline: float) -> None:
        """The attestation and its binding to the params, against the registry's measurements."""
        # Attestation first: a bad owner or payload with a bad attestation is -32603 (PROTOCOL 2.5).
        if not bound.attestation:
            raise _internal("missing attestation")
        document = decode_attestation(bound.attestation)
        self._within_budget("registry", deadline)
        measurements = await self._stage("registry", self._stages.measurements(deadline))
        if isinstance(measurements, bus.StageError):
            # The registry reports an empty set as an error; upstream checks it after the config
            # lookup, so its detail is not wrapped (PROTOCOL 2.5 row 3).
            if measurements.detail == NO_MEASUREMENTS:
                raise _internal(NO_MEASUREMENTS)
            raise _internal(f"failed to get enclave attestation config: {measurements.detail}")
        if not measurements.trusted_values:
            raise _internal(NO_MEASUREMENTS)
        self._within_budget("verify", deadline)
        verdict = await self._stage(
            "verify",
            self._stages.verify(
                bus.VerifyRequest(
                    document=document,
                    expected_user_data=bound.user_data,
                    trusted_values=measurements.trusted_values,
                    measurements_revision=measurements.revision,
                    ca_roots_pem=measurements.ca_roots_pem,
                ),
                deadline,
            ),
        )
        if isinstance(verdict, bus.StageError):
            raise _internal(verdict.detail)

    async def _serve_current(
        self, cur: CurrentProtocol, envelope: rpc.Request, raw_params: bytes, deadline: float
    ) -> bytes:
        """PROTOCOL 10, in upstream's order: bind (DomainHash v2), attest, EnclaveConfig,
        Workflow-DON authorization (secrets), then the memo, dispatch and signing."""
        method = envelope.method
        try:
            bound = binding.bind_current(method, raw_params)
        except GoJSONError as exc:
            raise _Failure(rpc.ErrInvalidParams, exc.message) from exc
        await self._attest(bound, deadline)
        params = bound.params
        if not isinstance(params, current.SecretsRequestParams | current.CapabilityRequestParams):
            raise _internal(f"unexpected params type {type(params).__name__}")
        self._within_budget("registry", deadline)
        trust = await self._stage("registry", cur.trust(deadline))
        if isinstance(trust, bus.StageError):
            raise _internal(trust.detail)
        if not isinstance(trust, bus.Trust):
            raise _internal(f"unexpected registry reply {trust!r}")
        if trust.own_peer_id != cur.key.public_key:
            raise _internal(key_mismatch(trust.own_peer_id, cur.key, self._settings.node))
        try:
            enclave_config.check(params.enclave_config, trust.relay_f, trust.relay_signers)
        except enclave_config.EnclaveConfigError as exc:
            raise _internal(exc.message) from exc
        if isinstance(params, current.SecretsRequestParams):
            try:
                compute_request.authorize(
                    params,
                    trust.workflow_members,
                    trust.workflow_f,
                    require_bft=trust.require_bft_quorum,
                )
            except compute_request.AuthorizationError as exc:
                raise _Failure(rpc.ErrInvalidParams, exc.message) from exc
        kind = kind_of(method)
        try:
            return await cur.memo.run(
                memo_key(params),
                lambda: self._dispatch_and_sign(cur, envelope, params, deadline),
                deadline=deadline,
                valid=lambda stored: answers(cur.key, method, params, stored),
            )
        except MemoWaitTimeout as exc:
            raise _internal(f"timed out waiting for in-flight {kind} request") from exc
        except MemoNoResult as exc:
            raise _internal(f"in-flight {kind} request completed without a result") from exc
        except MemoUnavailable as exc:
            raise _internal(str(exc)) from exc

    async def _dispatch_and_sign(
        self,
        cur: CurrentProtocol,
        envelope: rpc.Request,
        params: CurrentParams,
        deadline: float,
    ) -> bytes:
        self._within_budget("dispatch", deadline)
        dispatched = await self._stage(
            "dispatch",
            self._stages.dispatch(
                bus.DispatchRequest(
                    request_id=envelope.id,
                    method=envelope.method,
                    params=msgspec.Raw(dispatch_params(params)),
                    protocol="current",
                ),
                deadline,
            ),
        )
        if isinstance(dispatched, bus.StageError):
            raise _Failure(dispatched.code, dispatched.message, dispatched.detail)
        kind = kind_of(envelope.method)
        try:
            return sign_result(cur.key, envelope.method, params, bytes(dispatched.result))
        except signed.InvalidParamsError as exc:
            # Validate runs only here, at signing, after the call (as upstream): -32603.
            raise _internal(
                f"failed to sign {kind} response: hash {kind} response: {exc.message}"
            ) from exc

    def _within_budget(self, name: str, deadline: float) -> None:
        """Start no stage past the deadline (a request may have waited in the queue): in
        particular no dispatch, whose capability call cannot be taken back."""
        if self._clock() >= deadline:
            raise _internal(f"{name} stage not started: the request's budget ran out")

    async def _stage(self, name: str, call: Awaitable[_T]) -> _T:
        started = self._clock()
        try:
            with tracing.span(f"stage {name}", kind=tracing.CLIENT):
                return await call
        except StageUnavailable as exc:
            raise _internal(f"{name} stage unavailable: {exc}") from exc
        except StageTimeout as exc:
            raise _internal(f"{name} stage timed out: {exc}") from exc
        finally:
            if self._metrics is not None:
                self._metrics.stage_latency(name, self._clock() - started)


class NatsStages:
    """The Stages of one node over NATS request/reply, with retries for pure stages."""

    def __init__(self, nc: Client, settings: NodeSettings, registry: RegistryLookups) -> None:
        self._nc = nc
        self._settings = settings
        self._registry = registry
        self._verify_subject = subjects.verify(settings.don, settings.node)

    async def _retrying(self, subject: str, payload: bytes, deadline: float) -> bytes:
        return await request_pure(
            self._nc,
            subject,
            payload,
            deadline=deadline,
            attempt_timeout_s=self._settings.stage_attempt_timeout_s,
        )

    async def measurements(self, deadline: float) -> bus.Measurements | bus.StageError:
        reply = await self._registry.measurements(deadline)
        if isinstance(reply, bus.Measurements | bus.StageError):
            return reply
        return bus.StageError(
            code=rpc.ErrInternal, message="internal error", detail=f"unexpected reply {reply!r}"
        )

    async def verify(self, req: bus.VerifyRequest, deadline: float) -> bus.VerifyReply:
        data = await self._retrying(self._verify_subject, bus.ENCODER.encode(req), deadline)
        reply: bus.VerifyReply = bus.VERIFY_REPLY_DECODER.decode(data)
        return reply

    async def dispatch(self, req: bus.DispatchRequest, deadline: float) -> bus.DispatchReply:
        """One attempt with the whole remaining budget, which the dispatcher is told.

        Behind dispatch is a DON call: slow at times, and for capabilities not idempotent, so a
        timed-out attempt is never sent again (that would call the DON again, the load
        multiplied just when it is slow). Only "no responders" is retried: nothing ran.
        """
        subject = subjects.dispatch(self._settings.don, self._settings.node, req.method)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StageTimeout(subject, 0.0)
            # Told a little less than we wait, so that its own, more precise error (the DON
            # timed out) reaches us before our timeout fires.
            budget_ms = int((remaining - min(0.05, remaining / 10)) * 1000)
            budgeted = msgspec.structs.replace(req, budget_ms=max(1, budget_ms))
            try:
                data = await request(
                    self._nc, subject, bus.ENCODER.encode(budgeted), timeout_s=remaining
                )
                break
            except StageUnavailable:
                if deadline - time.monotonic() <= 0.05:
                    raise
                await asyncio.sleep(0.05)
        reply: bus.DispatchReply = bus.DISPATCH_REPLY_DECODER.decode(data)
        return reply


async def run(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None = None) -> Service:
    """Serve the node's JSON-RPC subject (unless the node is disabled)."""
    registry = await open_registry(nc, settings)
    cur: CurrentProtocol | None = None
    if settings.protocol == "current":
        try:
            cur = await open_current(
                nc, settings, registry, time.monotonic() + settings.request_timeout_s
            )
        except BaseException:
            await registry.close()
            raise
    ingress = Ingress(
        NatsStages(nc, settings, registry), settings=settings, metrics=metrics, signing=cur
    )
    svc = Service(
        nc,
        name="relay-ingress",
        description="JSON-RPC ingress of a relay node",
        concurrency=settings.concurrency,
        metadata={"don": settings.don, "node": settings.node},
    )
    svc.on_stop(registry.close)
    add_readiness(svc, registry)
    node_headers = {NODE_HEADER: settings.node}

    async def on_request(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        return await ingress.handle(data, received_at=accepted_at()), node_headers

    def on_expired(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        return ingress.expired(data, received_at=accepted_at()), node_headers

    def on_too_large(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        return ingress.too_large(data, limit=nc.max_payload), node_headers

    if settings.enabled:
        await svc.add_endpoint_with_headers(
            name="rpc",
            subject=subjects.rpc(settings.don, settings.node),
            queue=subjects.QUEUE_INGRESS,
            handler=on_request,
            # A request that waited its whole budget for a slot is answered then, not later.
            queue_budget_s=settings.request_timeout_s,
            on_expired=on_expired,
            on_too_large=on_too_large,
        )
    else:
        # The kill switch: the node stays discoverable but takes no requests.
        log.warning(
            "relay node %s/%s is disabled: not serving requests", settings.don, settings.node
        )
    await svc.start()
    return svc
