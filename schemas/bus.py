"""Messages between one relay node's actors (ingress, verifier, registry, dispatch).

Encoding: JSON via msgspec (readable with `relay tail`), one reused encoder/decoder per family.
Schema evolution (actors deploy independently): only ever ADD fields, with defaults; never rename,
retype or remove a field or a tag; unknown fields are ignored by msgspec decoders. A breaking
change gets a new subject version (`relay.v2...`), not an edit here.

Every reply is a tagged union of a success type and `StageError`, so a caller always learns
either the value or a JSON-RPC code plus the message that may go on the wire.
"""

from __future__ import annotations

import msgspec


class StageError(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    """A stage's failure: the JSON-RPC code and wire message, plus the detail for the log only.

    `message` is what the ingress puts on the wire, except that -32603 is always replaced by
    "internal error" there. `detail` is the full internal error; it is logged, never sent to a
    gateway, and must never contain a secret.
    """

    code: int
    message: str
    detail: str = ""


# --- registry -------------------------------------------------------------------------------


class MeasurementsRequest(msgspec.Struct, frozen=True, kw_only=True, tag="measurements.get"):
    """Ask for the trusted measurement sets of the confidential-workflows capability."""

    capability_id: str = "confidential-workflows@1.0.0-alpha"


class Measurements(msgspec.Struct, frozen=True, kw_only=True, tag="measurements"):
    """All `trustedValues` of all enclaves, in registry order, and the first non-empty CA PEM.

    Each trusted value is the raw bytes the registry holds (normally a JSON PCR object); they
    travel as bytes, not parsed JSON, so a malformed registry entry reaches the verifier intact
    and fails there with upstream's error. `revision` changes whenever the registry view
    changes, so a verifier can cache the index it built from `trusted_values` under it.
    """

    revision: int
    trusted_values: list[bytes]
    ca_roots_pem: str = ""


class CapabilityRequest(msgspec.Struct, frozen=True, kw_only=True, tag="capability.get"):
    """GetExecutable: is this capability known to the registry, and where does it run?"""

    capability_id: str


class CapabilityInfo(msgspec.Struct, frozen=True, kw_only=True, tag="capability"):
    capability_id: str
    don_id: int


class LocalNodeRequest(msgspec.Struct, frozen=True, kw_only=True, tag="local-node.get"):
    """The local node's workflow DON id and config version (vault metadata)."""


class LocalNode(msgspec.Struct, frozen=True, kw_only=True, tag="local-node"):
    workflow_don_id: int
    workflow_don_config_version: int


class DonRequest(msgspec.Struct, frozen=True, kw_only=True, tag="don.get"):
    """The members and F of a DON, by name (the gateway's quorum arithmetic)."""

    name: str


class DonInfo(msgspec.Struct, frozen=True, kw_only=True, tag="don"):
    id: int
    name: str
    f: int
    members: list[str]


class TrustRequest(msgspec.Struct, frozen=True, kw_only=True, tag="trust.get"):
    """What the current protocol checks a request against (PROTOCOL 10.7, 10.8): the relay DON
    `don` this node belongs to, and the Workflow DON of the asking node."""

    don: str


class Trust(msgspec.Struct, frozen=True, kw_only=True, tag="trust"):
    """The relay DON's F and signers, this node's registered peer id, the Workflow DON's F and
    members (peer ids, registry order) and whether it asks for a 2F+1 quorum."""

    revision: int
    relay_f: int
    relay_signers: list[bytes]
    own_peer_id: bytes
    workflow_f: int
    workflow_members: list[bytes]
    require_bft_quorum: bool = False


RegistryRequest = (
    MeasurementsRequest | CapabilityRequest | LocalNodeRequest | DonRequest | TrustRequest
)
RegistryReply = Measurements | CapabilityInfo | LocalNode | DonInfo | Trust | StageError


# --- verifier --------------------------------------------------------------------------------


class VerifyRequest(msgspec.Struct, frozen=True, kw_only=True, tag="verify"):
    """Verify one attestation document against the trusted sets, at the verifier's clock."""

    document: bytes
    expected_user_data: bytes
    trusted_values: list[bytes]
    measurements_revision: int
    ca_roots_pem: str = ""


class Verified(msgspec.Struct, frozen=True, kw_only=True, tag="verified"):
    module_id: str
    timestamp_ms: int
    is_debug: bool


VerifyReply = Verified | StageError


# --- dispatch --------------------------------------------------------------------------------


class DispatchRequest(msgspec.Struct, frozen=True, kw_only=True, tag="dispatch"):
    """Serve an attested request: `params` is the re-marshalled params JSON without attestation."""

    request_id: str
    method: str
    params: msgspec.Raw
    # How long the ingress still waits for this answer (ms) when it sent it; the dispatcher gives
    # its call to the DON no longer, so nothing runs on after the ingress gave up. 0: unknown (an
    # older ingress), the dispatcher's own request budget applies.
    budget_ms: int = 0
    # The protocol the ingress serves this request under ("n1" or "current"): under "current"
    # a vault's per-secret error is a user error (-32602) unless it is the system fallback
    # (PROTOCOL 10.11). An older ingress sends nothing: "n1".
    protocol: str = "n1"


class DispatchResult(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    """The method's result JSON, already encoded exactly as Go would encode it."""

    result: msgspec.Raw


DispatchReply = DispatchResult | StageError


def dispatch_reply_size(reply: DispatchReply) -> int:
    """About how many bytes a remembered reply holds (capability dedupe's memory bound)."""
    if isinstance(reply, DispatchResult):
        return len(reply.result)
    return len(reply.message) + len(reply.detail)


# One encoder and one decoder per message family, reused.
ENCODER = msgspec.json.Encoder()

STAGE_FAILED = ENCODER.encode(
    StageError(code=-32603, message="internal error", detail="the stage failed; see its log")
)
"""What a relay actor answers when its handler fails or its reply cannot be sent (too large):
a prompt -32603, so the caller does not wait out its budget for a reply that never comes."""
REGISTRY_REQUEST_DECODER = msgspec.json.Decoder(RegistryRequest)
REGISTRY_REPLY_DECODER = msgspec.json.Decoder(RegistryReply)
VERIFY_REQUEST_DECODER = msgspec.json.Decoder(VerifyRequest)
VERIFY_REPLY_DECODER = msgspec.json.Decoder(VerifyReply)
DISPATCH_REQUEST_DECODER = msgspec.json.Decoder(DispatchRequest)
DISPATCH_REPLY_DECODER = msgspec.json.Decoder(DispatchReply)
