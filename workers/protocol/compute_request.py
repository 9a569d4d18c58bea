"""Workflow-DON authorization of a secrets request (PROTOCOL 10.8, PRIV-433).

A current enclave forwards, with every `confidential.secrets.get`, the compute request the
Workflow DON asked it to run, signed by each Workflow-DON node (`signed_compute_requests`). A
relay node hands out secrets only when enough distinct Workflow-DON members signed one and the
same compute request, and that request names the same owner and workflow as the params:

- `compute_request_hash`: `H_cr`, the layout of chainlink-common `ComputeRequest.Hash`
  (`bdf9e82b2`): the last element is `str(version)` for the legacy version `0.0.6` and
  `str(applicationRequestID)` otherwise (string equality, as `main` does; PR #2242's semver
  rule is not merged);
- `compute_request_payload`: the 176 signed bytes under `CONFIDENTIAL_COMPUTE_PAYLOAD_`;
- `authorize`: the relay's `verifyWorkflowAuthorization`, in its order, with its -32602 texts
  (`AuthorizationError.message` goes on the wire). F+1 signers by default, 2F+1 when the
  Workflow DON asks for a BFT quorum.

Pure: the Workflow DON's members and F come in as values (the registry's view).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from schemas import current
from schemas.gojson_strconv import go_quote
from workers.protocol import goproto
from workers.protocol.owner import is_hex_address
from workers.protocol.signed import (
    SEP,
    SignedProtocolError,
    count,
    find_signer,
    peerid_payload,
    put_bin,
    put_str,
)

__all__ = [
    "COMPUTE_PREFIX",
    "LEGACY_VERSION",
    "AuthorizationError",
    "Authorized",
    "authorize",
    "compute_request_hash",
    "compute_request_payload",
    "threshold",
]

COMPUTE_PREFIX: Final = "CONFIDENTIAL_COMPUTE_PAYLOAD_"  # 29 bytes, trailing underscore
LEGACY_VERSION: Final = "0.0.6"  # CC's ServiceConfidentialComputeVersion today
_WORKFLOW_ID, _OWNER = 1, 5  # WorkflowExecution field numbers


class AuthorizationError(SignedProtocolError):
    """The request is not authorised; `message` is the relay's -32602 wire text."""


@dataclass(frozen=True, slots=True)
class Authorized:
    """What an authorised request proved."""

    compute_request_hash: bytes
    signers: tuple[bytes, ...]
    """The distinct members credited, in the order their entries came, up to the threshold
    (entries after it are not verified: they cannot change the verdict)."""
    threshold: int
    signed_owner: str
    signed_workflow_id: str


def compute_request_hash(request: current.SignedComputeRequest) -> bytes:
    """`ComputeRequest.Hash`: 32 bytes (the signature and `perNodeData` are not hashed)."""
    h = hashlib.sha256(SEP + b"\nComputeRequest\n")
    request_id = request.request_id
    if len(request_id) != current.REQUEST_ID_SIZE:
        raise ValueError(f"requestID is {current.REQUEST_ID_SIZE} bytes, got {len(request_id)}")
    h.update(request_id)  # a Go [32]byte: raw, no length
    h.update(put_bin(request.public_data))
    names = request.ciphertext_names or ()
    h.update(count(len(names)) + b"".join(put_str(n) for n in names))
    texts = request.ciphertexts or ()
    h.update(count(len(texts)) + b"".join(put_bin(t) for t in texts))
    h.update(put_bin(request.enclave_ephemeral_public_key) + put_bin(request.master_public_key))
    h.update(put_str(request.app_id))
    legacy = request.version == LEGACY_VERSION
    h.update(put_str(request.version if legacy else request.application_request_id))
    return h.digest()


def compute_request_payload(request_hash: bytes) -> bytes:
    """The 176 bytes each Workflow-DON node signs for a compute request hash."""
    return peerid_payload(COMPUTE_PREFIX, request_hash)


def threshold(don_f: int, require_bft: bool) -> int:
    """Distinct Workflow-DON signers needed: F+1, or 2F+1 for a BFT quorum."""
    return 2 * don_f + 1 if require_bft else don_f + 1


def _same_address(a: str, b: str) -> bool:
    def digits(s: str) -> str:
        return s[2:] if s[:2] in ("0x", "0X") else s

    return digits(a).lower() == digits(b).lower()


def authorize(
    params: current.SecretsRequestParams,
    members: Sequence[bytes],
    don_f: int,
    *,
    require_bft: bool = False,
) -> Authorized:
    """Check `params.signed_compute_requests` against the Workflow DON; AuthorizationError.

    `members` are the Workflow DON's peer ids (32-byte Ed25519 public keys) in registry order:
    an entry is credited to the first member whose key verifies it, once per member.
    """
    entries = params.signed_compute_requests or ()
    if not entries:
        raise AuthorizationError("missing signed compute requests")
    need = threshold(don_f, require_bft)
    first = compute_request_hash(entries[0])
    for entry in entries[1:]:
        if compute_request_hash(entry) != first:
            raise AuthorizationError(
                "forwarded signed compute requests do not share one compute request"
            )
    payload = compute_request_payload(first)
    credited: dict[bytes, None] = {}
    for entry in entries:
        if len(credited) >= need:
            break  # the verdict cannot change; each verification costs ~0.1 ms
        index = find_signer(members, payload, entry.signature or b"")
        if index is not None:
            credited.setdefault(members[index])
    if len(credited) < need:
        raise AuthorizationError(
            f"insufficient Workflow DON signatures: {len(credited)} unique signers, need {need}"
        )
    try:
        signed = goproto.workflow_execution_strings(entries[0].public_data or b"")
    except goproto.GoProtoError as exc:
        raise AuthorizationError(
            f"failed to unmarshal workflow execution from public data: {exc}"
        ) from exc
    signed_owner = signed.get(_OWNER, "")
    signed_workflow = signed.get(_WORKFLOW_ID, "")
    if not (is_hex_address(params.owner) and is_hex_address(signed_owner)):
        raise AuthorizationError("invalid owner address")
    if not _same_address(params.owner, signed_owner):
        raise AuthorizationError(
            f"owner not authorized: request {go_quote(params.owner)} vs signed {go_quote(signed_owner)}"
        )
    if params.workflow_id != signed_workflow:
        raise AuthorizationError(
            f"workflow_id not authorized: request {go_quote(params.workflow_id)}"
            f" vs signed {go_quote(signed_workflow)}"
        )
    return Authorized(
        compute_request_hash=first,
        signers=tuple(credited),
        threshold=need,
        signed_owner=signed_owner,
        signed_workflow_id=signed_workflow,
    )
