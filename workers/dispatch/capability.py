"""Dispatch of `confidential.capability.execute` to the named capability (PROTOCOL 4.2, N1 + N3).

Order after attestation: GetExecutable (registry) before payload decoding; a capability error is
a successful result `{"error": ...}`; the answer is a deterministically serialised
`sdk.v1alpha.CapabilityResponse` in base64 (N3+, so map fields agree byte for byte across nodes).
Execution is deduplicated by its logical key, so a retried request never runs twice.

Whether the payload unmarshals, and the -32602 text when it does not, are protobuf-go's
(`workers/dispatch/goproto.py`), not python-protobuf's: that message goes on the wire, and honest Python and
Go nodes must agree on it byte for byte.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from nats.aio.client import Client

from schemas import bus, capability, rpc, subjects
from schemas.proto.gen import sdk_pb2, values_pb2
from workers.dispatch import goproto
from workers.dispatch.common import (
    Capabilities,
    CapabilityUnreachable,
    NatsCapabilities,
    Registry,
    deadline_for,
    expired_reply,
    internal,
    invalid_params,
)
from workers.dispatch.dedupe import Deduplicator, logical_key
from workers.dispatch.dedupe_shared import DedupeUnavailable, SharedDeduplicator
from workers.protocol import binding
from workers.registry.client import add_readiness, open_registry
from workers.runtime.bus import Headers, Service, accepted_at
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.dispatch.capability")

CAPABILITY_TIMED_OUT = "capability execute timed out"
"""The result's `error` when a capability did not answer in time (it may have run)."""

VALUE_TYPE = "values.v1.Value"


def _inputs(payload: any_pb2.Any) -> bytes:
    """Old-style capabilities read a values.Map from Inputs (PROTOCOL 4.2 step 4)."""
    if payload.type_url.rsplit("/", 1)[-1] != VALUE_TYPE:
        return b""
    value = values_pb2.Value()
    try:
        if not payload.Unpack(value):
            return b""
    except DecodeError:
        return b""
    if value.WhichOneof("value") != "map_value":
        return b""
    return value.map_value.SerializeToString(deterministic=True)


def response_payload(outcome: capability.CapabilityOutcome) -> str:
    """base64 of the deterministic CapabilityResponse; "" for an empty answer (omitted)."""
    response = sdk_pb2.CapabilityResponse()
    if outcome.payload or outcome.payload_present:
        response.payload.SetInParent()  # present even when empty, as Go's non-nil Any
        response.payload.ParseFromString(outcome.payload)
    encoded = response.SerializeToString(deterministic=True)
    return base64.b64encode(encoded).decode("ascii")


class Dedupe(Protocol):
    async def run(
        self,
        key: str,
        work: Callable[[], Awaitable[bus.DispatchReply]],
        *,
        deadline: float | None = None,
    ) -> bus.DispatchReply: ...


class CapabilityDispatcher:
    def __init__(self, registry: Registry, caps: Capabilities, dedupe: Dedupe) -> None:
        self._registry = registry
        self._caps = caps
        self._dedupe = dedupe

    async def handle(self, req: bus.DispatchRequest, deadline: float) -> bus.DispatchReply:
        params = rpc.decode_capability_params(bytes(req.params))
        found = await self._registry.capability(params.capability_id, deadline)
        if isinstance(found, bus.StageError):
            return internal(f"capability not found: {found.detail}")
        try:
            raw = binding.go_base64_decode(params.payload)
        except binding.GoBase64Error as exc:
            return invalid_params(f"failed to decode payload: {exc.message}")
        try:
            goproto.check_capability_request(raw)
        except goproto.GoProtoError as exc:
            return invalid_params(f"failed to unmarshal capability request: {exc}")
        request = sdk_pb2.CapabilityRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            # Go accepts it, python-protobuf does not: only past upb's nesting limit of 100 for
            # unknown groups, where Go allows 10,000. Fail closed with Go's generic text.
            log.warning("payload Go accepts but python-protobuf refuses: %s", exc)
            return invalid_params(f"failed to unmarshal capability request: {goproto.ERR_DECODE}")
        # The proto's own id and callback_id are ignored: params.capability_id is authoritative.
        call = capability.CapabilityCall(
            capability_id=params.capability_id,
            method=request.method,
            payload=request.payload.SerializeToString(deterministic=True)
            if request.HasField("payload")
            else b"",
            inputs=_inputs(request.payload) if request.HasField("payload") else b"",
            metadata=capability.CallMetadata(
                workflow_id=params.workflow_id,
                workflow_owner=params.owner,
                workflow_execution_id=params.execution_id,
                reference_id=params.reference_id or req.request_id,
            ),
        )
        key = logical_key(
            params.workflow_id,
            params.execution_id,
            call.metadata.reference_id,
            params.capability_id,
        )
        try:
            return await self._dedupe.run(
                key, lambda: self._execute(call, deadline), deadline=deadline
            )
        except CapabilityUnreachable as exc:
            # Nobody listened, so nothing ran and nothing is remembered: a retry may try again.
            return internal(f"capability unreachable: {exc}")
        except DedupeUnavailable as exc:
            return internal(f"capability not executed: {exc}")

    async def _execute(self, call: capability.CapabilityCall, deadline: float) -> bus.DispatchReply:
        try:
            outcome = await self._caps.execute(call, deadline)
        except CapabilityUnreachable as exc:
            if not exc.maybe_executed:
                raise
            # It may have run: remember the failure, so a retry cannot run it a second time. The
            # text is fixed (it goes on the wire, and nodes must agree); the detail is logged.
            log.warning("capability call may have run but did not answer: %s", exc)
            outcome = capability.CapabilityOutcome(error=CAPABILITY_TIMED_OUT)
        if outcome.error:
            result = rpc.CapabilityResponseResult(error=outcome.error)
        else:
            try:
                result = rpc.CapabilityResponseResult(payload=response_payload(outcome))
            except DecodeError as exc:
                return internal(f"converting capability response: {exc}")
        return bus.DispatchResult(result=msgspec.Raw(rpc.encode_capability_result(result)))


async def run(nc: Client, settings: NodeSettings) -> Service:
    registry = await open_registry(nc, settings)
    dedupe: Dedupe = (
        await SharedDeduplicator.open(
            nc, settings.node, js_domain=settings.js_domain, replicas=settings.kv_replicas
        )
        if settings.dedupe == "shared"
        else Deduplicator(size_of=bus.dispatch_reply_size)
    )
    dispatcher = CapabilityDispatcher(registry, NatsCapabilities(nc), dedupe)

    async def serve(data: bytes, headers: Headers) -> bytes:
        received_at = accepted_at()  # the budget includes any wait for a slot
        try:
            req = bus.DISPATCH_REQUEST_DECODER.decode(data)
            deadline = deadline_for(req, settings, received_at)
            reply = await dispatcher.handle(req, deadline)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            reply = internal(f"bad dispatch request: {exc}")
        return bus.ENCODER.encode(reply)

    svc = Service(
        nc,
        failure_reply=bus.STAGE_FAILED,
        name="relay-dispatch-capability",
        description="confidential.capability.execute -> the named capability",
        concurrency=settings.concurrency,
        metadata={"don": settings.don, "node": settings.node},
    )
    svc.on_stop(registry.close)
    add_readiness(svc, registry)
    await svc.add_endpoint(
        name="capability-execute",
        subject=subjects.dispatch(settings.don, settings.node, rpc.MethodCapabilityExec),
        queue=subjects.dispatch_queue(rpc.MethodCapabilityExec),
        handler=serve,
        queue_budget_s=settings.request_timeout_s,
        on_expired=expired_reply,
    )
    await svc.start()
    return svc
