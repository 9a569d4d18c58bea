"""What both dispatch actors share: the registry and capability clients, error helpers."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from nats.aio.client import Client

from schemas import bus, capability, rpc, subjects
from workers.runtime import tracing
from workers.runtime.bus import (
    NO_RESPONDERS_BACKOFF_S,
    Headers,
    StageTimeout,
    StageUnavailable,
    request,
)
from workers.runtime.settings import NodeSettings

INTERNAL = rpc.ErrInternal


def deadline_for(req: bus.DispatchRequest, settings: NodeSettings, received_at: float) -> float:
    """When to stop: the ingress's remaining budget as it sent `req`, never more than ours."""
    budget = settings.request_timeout_s
    if req.budget_ms > 0:
        budget = min(budget, req.budget_ms / 1000.0)
    return received_at + budget


def internal(detail: str) -> bus.StageError:
    """-32603: the ingress puts only "internal error" on the wire; the detail is logged."""
    return bus.StageError(code=INTERNAL, message=detail, detail=detail)


def invalid_params(message: str) -> bus.StageError:
    return bus.StageError(code=rpc.ErrInvalidParams, message=message, detail=message)


class Registry(Protocol):
    """The registry lookups dispatch needs (GetExecutable and LocalNode)."""

    async def capability(self, capability_id: str, deadline: float) -> bus.RegistryReply: ...

    async def local_node(self, deadline: float) -> bus.RegistryReply: ...


class Capabilities(Protocol):
    """Capability execution; raises CapabilityUnreachable when the DON cannot be reached."""

    async def execute(
        self, call: capability.CapabilityCall, deadline: float
    ) -> capability.CapabilityOutcome: ...


class CapabilityUnreachable(Exception):
    """The capability's subject had no responder, or did not answer in time.

    `maybe_executed` is False only when NATS said nobody listens: then the call surely did not
    run and may be retried; after a timeout it may have run.
    """

    def __init__(self, message: str, *, maybe_executed: bool) -> None:
        super().__init__(message)
        self.maybe_executed = maybe_executed


class NatsCapabilities:
    """Capability calls over NATS. No responders (a DON restarting, say) is retried within the
    deadline, every NO_RESPONDERS_BACKOFF_S: NATS said nobody listens, so nothing ran. A timeout
    is never retried: the call may have run."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def execute(
        self, call: capability.CapabilityCall, deadline: float
    ) -> capability.CapabilityOutcome:
        subject = subjects.capability(call.capability_id, call.method)
        payload = capability.ENCODER.encode(call)
        # The DON call: its own span, whose context the capability's worker continues. Named by
        # the capability (known to the registry, or there is no call); the method is the
        # client's text, so it is only an attribute, cut short.
        with tracing.span(
            f"call {call.capability_id}",
            kind=tracing.CLIENT,
            attributes={"messaging.system": "nats", "relay.capability.method": call.method[:128]},
        ):
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Not sent at all (the budget ran out before, e.g. in a queue): it did not run.
                    raise CapabilityUnreachable(
                        f"not sent to {subject}: the budget ran out", maybe_executed=False
                    )
                try:
                    data = await request(self._nc, subject, payload, timeout_s=remaining)
                    break
                except StageUnavailable as exc:
                    if deadline - time.monotonic() <= NO_RESPONDERS_BACKOFF_S:
                        raise CapabilityUnreachable(str(exc), maybe_executed=False) from exc
                    await asyncio.sleep(NO_RESPONDERS_BACKOFF_S)
                except StageTimeout as exc:
                    raise CapabilityUnreachable(str(exc), maybe_executed=True) from exc
        outcome: capability.CapabilityOutcome = capability.OUTCOME_DECODER.decode(data)
        return outcome


def expired_reply(data: bytes, headers: Headers) -> bytes:
    """A dispatch request that waited out the node's budget for a slot: the ingress has already
    answered it, so a prompt -32603 rather than a DON call nobody waits for."""
    return bus.ENCODER.encode(internal("dispatch request expired waiting for a slot"))
