"""The verifier actor: pure CPU, verifies one attestation document per request.

`handle` is the whole logic (no NATS); `run` wires it to `relay.v1.<don>.<node>.verify` in the
`verifiers` queue group, so more verifier processes mean more throughput and a dead one is
replaced by its peers (the ingress retries a lost attempt within the request's deadline).

Trust roots come from this process's own configuration only: the pinned AWS Nitro root G1, or an
explicit development root. A `caRootsPEM` in the registry is not trusted on its own (upstream
would use it); a root that a registry writer can swap would make the attestation meaningless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client

from schemas import bus, subjects
from workers.attestation import AttestationError, MeasurementIndex, TrustRoots, Verifier
from workers.registry.actor import NO_MEASUREMENTS
from workers.runtime.bus import Headers, Service
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.verifier")

INTERNAL = -32603
DEBUG_ENCLAVE_REFUSED = (
    "debug-mode enclave refused: PCR0-2 are all zero, which any code reports in debug mode"
    " (RELAY_ALLOW_DEBUG_ENCLAVES=true allows it, for development only)"
)


@dataclass
class _IndexCache:
    """The index built from the registry's trusted values, kept while the registry view holds."""

    revision: int = -1
    values: list[bytes] = field(default_factory=list)
    index: MeasurementIndex | None = None


class VerifierActor:
    """Verify documents against the trusted sets the ingress passes along with each request."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        max_age_s: float | None,
        allow_debug: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._max_age_s = max_age_s
        self._allow_debug = allow_debug
        self._clock = clock
        self._cache = _IndexCache()

    def _index(self, req: bus.VerifyRequest) -> MeasurementIndex:
        cache = self._cache
        # The revision names the registry view; comparing the values too keeps a stale or
        # colliding revision from ever matching against the wrong sets.
        if (
            cache.index is not None
            and cache.revision == req.measurements_revision
            and cache.values == req.trusted_values
        ):
            return cache.index
        index = MeasurementIndex.from_json_values(req.trusted_values)
        self._cache = _IndexCache(
            revision=req.measurements_revision, values=list(req.trusted_values), index=index
        )
        return index

    def handle(self, req: bus.VerifyRequest) -> bus.VerifyReply:
        if not req.trusted_values:
            return bus.StageError(
                code=INTERNAL,
                message="internal error",
                detail=NO_MEASUREMENTS,
            )
        try:
            index = self._index(req)
            doc = self._verifier.verify(
                req.document,
                now=self._clock(),
                expected_user_data=req.expected_user_data,
                trusted=index,
                max_age_s=self._max_age_s,
            )
        except AttestationError as exc:
            return bus.StageError(
                code=INTERNAL,
                message="internal error",
                detail=f"no trusted measurement set matched: {exc}",
            )
        if doc.is_debug and not self._allow_debug:
            # Stricter than upstream, on purpose: a debug-mode enclave reports PCR0-2 as zeros
            # whatever code it runs, and its memory is open to the host, so trusting zeros would
            # hand secrets to any code at all.
            return bus.StageError(
                code=INTERNAL, message="internal error", detail=DEBUG_ENCLAVE_REFUSED
            )
        return bus.Verified(
            module_id=doc.module_id, timestamp_ms=doc.timestamp_ms, is_debug=doc.is_debug
        )

    async def handle_bytes(self, data: bytes, headers: Headers) -> bytes:
        try:
            req = bus.VERIFY_REQUEST_DECODER.decode(data)
        except Exception as exc:  # msgspec raises DecodeError/ValidationError
            reply: bus.VerifyReply = bus.StageError(
                code=INTERNAL, message="internal error", detail=f"bad verify request: {exc}"
            )
        else:
            reply = self.handle(req)
        if isinstance(reply, bus.StageError):
            log.info("attestation rejected: %s", reply.detail)
        return bus.ENCODER.encode(reply)


def build_verifier(settings: NodeSettings) -> Verifier:
    if settings.dev_root_pem is not None:
        roots = TrustRoots.development(settings.dev_root_pem.read_bytes())
    else:
        roots = TrustRoots.aws()
    return Verifier(roots)


async def run(nc: Client, settings: NodeSettings) -> Service:
    """Serve verify requests for this node until the returned service is stopped."""
    actor = VerifierActor(
        build_verifier(settings),
        max_age_s=settings.max_attestation_age_s,
        allow_debug=settings.allow_debug_enclaves,
    )
    if settings.allow_debug_enclaves:
        log.warning("debug-mode enclaves (PCR0-2 all zero) are ALLOWED: development only")
    svc = Service(
        nc,
        failure_reply=bus.STAGE_FAILED,
        name="relay-verifier",
        description="Nitro attestation verification",
        # Verification is CPU-bound and synchronous: more slots would only queue inside the process.
        concurrency=4,
        metadata={"don": settings.don, "node": settings.node},
    )
    await svc.add_endpoint(
        name="verify",
        subject=subjects.verify(settings.don, settings.node),
        queue=subjects.QUEUE_VERIFIER,
        handler=actor.handle_bytes,
    )
    await svc.start()
    return svc
