"""Signed relay responses (PROTOCOL 10.1-10.5): Validate, the response hash, the signature.

Each current-protocol relay node answers with its result, the SHA-256 `H` of (cleaned params,
result) laid out byte by byte as 10.2 says, and its Ed25519 signature over the libocr
domain-separated payload of `H`. The enclave recomputes `H` from the params it sent and counts
distinct signers it trusts, so one byte of difference here makes a node's vote worthless.

- `u64`, `u32`, `put_str`, `put_bin`, `count`: the byte primitives (10.1);
- `validate_secrets` / `validate_capability`: chainlink-common's `Validate` with its exact
  texts (10.3), raising `InvalidParamsError`;
- `secrets_response_hash` / `capability_response_hash` / `response_hash`: `H` (10.2), Validate
  first, as upstream's `Hash` does;
- `peerid_payload` / `relay_payload`: the signed bytes (10.4);
- `NodeKey`: a node's Ed25519 key from its 32-byte seed; `verify`: Go's `ed25519.Verify`;
  `find_signer`: the first key of a list that verifies (the enclave's and the relay's rule);
  `check_relay_signature`: the enclave's check of one bundle entry, with its texts (10.6);
- `sign_secrets` / `sign_capability` / `sign_result_json`: the signed result and its wire JSON
  (10.5), Go's `json.Marshal` bytes.

Pure: no NATS, no asyncio, no clock, no I/O (keys come in as bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas import current, rpc
from schemas.gojson_strconv import go_bytes

__all__ = [
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_SEED_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "SEP",
    "InvalidKeyError",
    "InvalidParamsError",
    "NodeKey",
    "SignatureRejected",
    "SignedProtocolError",
    "UnknownMethodError",
    "capability_response_hash",
    "check_relay_signature",
    "count",
    "enclave_config_bytes",
    "find_signer",
    "peerid_payload",
    "put_bin",
    "put_str",
    "relay_payload",
    "response_hash",
    "secrets_response_hash",
    "sign_capability",
    "sign_result_json",
    "sign_secrets",
    "u32",
    "u64",
    "validate_capability",
    "validate_secrets",
    "verify",
]

SEP: Final = rpc.DomainSeparator.encode()  # 28 bytes, no length prefix anywhere
RELAY_PREFIX: Final = rpc.RelayResponseSignaturePrefix  # 27 bytes, trailing underscore
ED25519_SEED_SIZE: Final = 32
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64

# libocr ragep2p/peeridhelper: 64 spaces, a fixed context string, NUL, then the prefix.
_PAYLOAD_HEAD: Final = b" " * 64 + b"ragep2p arbitrary message signing" + b"\x00"
_SHORT_MESSAGE_MAX: Final = 1024
# The order of the Ed25519 group; Go's Verify refuses an S at or above it (malleability).
_GROUP_ORDER: Final = 2**252 + 27742317777372353535851937790883648493

SecretsParams = current.SecretsRequestParams
CapabilityParams = current.CapabilityRequestParams


class SignedProtocolError(ValueError):
    """Any failure of this module; `message` is the upstream text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParamsError(SignedProtocolError):
    """`Validate` failed: `message` is `invalid <secrets|capability> request params: <reason>`."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind} request params: {reason}")
        self.reason = reason


class UnknownMethodError(SignedProtocolError):
    """A method that has no signed response."""


class InvalidKeyError(SignedProtocolError):
    """A key that is not a 32-byte Ed25519 seed."""


class SignatureRejected(SignedProtocolError):
    """A bundle entry's signature is invalid (10.6 step 4); `message` is the enclave's text."""


# --------------------------------------------------------------------------- 10.1 primitives


def u64(n: int) -> bytes:
    """8-byte big-endian unsigned."""
    return n.to_bytes(8, "big")


def u32(n: int) -> bytes:
    """4-byte big-endian unsigned."""
    return n.to_bytes(4, "big")


def put_bin(b: bytes | None) -> bytes:
    """`u64(len(b))` then `b` (nil is empty)."""
    b = b or b""
    return u64(len(b)) + b


def put_str(s: str) -> bytes:
    """`u64(len)` then the bytes of a Go string (its length in bytes, not characters)."""
    return put_bin(go_bytes(s))


def count(n: int) -> bytes:
    """A list length, without payload."""
    return u64(n)


def _type_tag(name: str) -> bytes:
    return SEP + b"\n" + name.encode() + b"\n"


# --------------------------------------------------------------------------- 10.3 Validate


def _owner_ok(owner: str) -> bool:
    raw = go_bytes(owner)
    digits = raw[2:]
    return (
        len(raw) == 42 and raw[:2] == b"0x" and all(c in b"0123456789abcdefABCDEF" for c in digits)
    )


def _hex_ok(text: str) -> bool:
    raw = go_bytes(text)
    return len(raw) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in raw)


def _common_reason(workflow_id: str, owner: str, execution_id: str) -> str:
    if not workflow_id:
        return "workflow_id is required"
    if not owner:
        return "owner is required"
    if not _owner_ok(owner):
        return "owner must be a 0x-prefixed 20-byte hex address"
    if not execution_id:
        return "execution_id is required"
    return ""


def _config_reason(config: current.EnclaveConfig | None) -> str:
    if config is None:
        return ""
    if not config.signers:
        return "enclave_config.signers must be non-empty"
    for i, signer in enumerate(config.signers):
        if not signer:
            return f"enclave_config.signers[{i}] is empty"
    if config.f <= 0:
        return "enclave_config.f must be > 0"
    if not config.master_public_key:
        return "enclave_config.master_public_key must be non-empty"
    return ""


def _secrets_reason(p: SecretsParams) -> str:
    reason = _common_reason(p.workflow_id, p.owner, p.execution_id)
    if reason:
        return reason
    if not p.enclave_public_key:
        return "enclave_public_key is required"
    if not _hex_ok(p.enclave_public_key):
        return "enclave_public_key must be hex-encoded"
    if not p.secrets:
        return "secrets must be non-empty"
    for i, secret in enumerate(p.secrets):
        if not secret.key:
            return f"secrets[{i}].key is required"
        if not secret.namespace:
            return f"secrets[{i}].namespace is required"
    return _config_reason(p.enclave_config)


def _capability_reason(p: CapabilityParams) -> str:
    reason = _common_reason(p.workflow_id, p.owner, p.execution_id)
    if reason:
        return reason
    for name, value in (
        ("reference_id", p.reference_id),
        ("capability_id", p.capability_id),
        ("payload", p.payload),
    ):
        if not value:
            return f"{name} is required"
    return _config_reason(p.enclave_config)


def validate_secrets(params: SecretsParams) -> None:
    """`SecretsRequestParams.Validate`; raises InvalidParamsError with the first failing check."""
    reason = _secrets_reason(params)
    if reason:
        raise InvalidParamsError("secrets", reason)


def validate_capability(params: CapabilityParams) -> None:
    """`CapabilityRequestParams.Validate`; raises InvalidParamsError."""
    reason = _capability_reason(params)
    if reason:
        raise InvalidParamsError("capability", reason)


# --------------------------------------------------------------------------- 10.2 hash


def enclave_config_bytes(config: current.EnclaveConfig) -> bytes:
    """`EC`: the signers sorted bytewise (the JSON keeps the sender's order), key, t, f."""
    signers = sorted(s or b"" for s in config.signers or ())
    return (
        count(len(signers))
        + b"".join(put_bin(s) for s in signers)
        + put_bin(config.master_public_key)
        + u32(config.t)
        + u32(config.f)
    )


def _head(workflow_id: str, owner: str, execution_id: str, org_id: str) -> bytes:
    return put_str(workflow_id) + put_str(owner) + put_str(execution_id) + put_str(org_id)


def secrets_response_hash(params: SecretsParams, result: rpc.SecretsResponseResult) -> bytes:
    """`SecretsResponseResult.Hash(params)`: 32 bytes, or InvalidParamsError from Validate."""
    validate_secrets(params)
    h = hashlib.sha256(_type_tag("SecretsResponseResult"))
    h.update(_head(params.workflow_id, params.owner, params.execution_id, params.org_id))
    ids = params.secrets or ()
    h.update(count(len(ids)))
    # Sorted by namespace then key, but written key first. Python's sort is stable, as Go's
    # insertion sort is for up to 12 elements (10.1); equal ids are equal bytes anyway.
    for sid in sorted(ids, key=lambda s: (go_bytes(s.namespace), go_bytes(s.key))):
        h.update(put_str(sid.key) + put_str(sid.namespace))
    h.update(put_str(params.enclave_public_key))
    if params.enclave_config is not None:
        h.update(enclave_config_bytes(params.enclave_config))
    entries = result.secrets or ()
    h.update(count(len(entries)))
    for e in sorted(
        entries,
        key=lambda e: (go_bytes(e.id.namespace), go_bytes(e.id.key), go_bytes(e.ciphertext)),
    ):
        shares = sorted(go_bytes(s) for s in e.encrypted_shares or ())
        h.update(put_str(e.id.key) + put_str(e.id.namespace) + put_str(e.ciphertext))
        h.update(count(len(shares)) + b"".join(put_bin(s) for s in shares))
    return h.digest()


def capability_response_hash(
    params: CapabilityParams, result: rpc.CapabilityResponseResult
) -> bytes:
    """`CapabilityResponseResult.Hash(params)`: 32 bytes, or InvalidParamsError."""
    validate_capability(params)
    h = hashlib.sha256(_type_tag("CapabilityResponseResult"))
    h.update(_head(params.workflow_id, params.owner, params.execution_id, params.org_id))
    h.update(put_str(params.reference_id) + put_str(params.capability_id) + put_str(params.payload))
    if params.enclave_config is not None:
        h.update(enclave_config_bytes(params.enclave_config))
    h.update(put_str(result.payload) + put_str(result.error))
    return h.digest()


def response_hash(
    method: str,
    params: SecretsParams | CapabilityParams,
    result: rpc.SecretsResponseResult | rpc.CapabilityResponseResult,
) -> bytes:
    """`H` for either method; raises UnknownMethodError, InvalidParamsError or TypeError."""
    if method == rpc.MethodSecretsGet:
        if not isinstance(params, SecretsParams) or not isinstance(
            result, rpc.SecretsResponseResult
        ):
            raise TypeError("secrets params and result expected")
        return secrets_response_hash(params, result)
    if method == rpc.MethodCapabilityExec:
        if not isinstance(params, CapabilityParams) or not isinstance(
            result, rpc.CapabilityResponseResult
        ):
            raise TypeError("capability params and result expected")
        return capability_response_hash(params, result)
    raise UnknownMethodError(f"unknown relay method: {method}")


# --------------------------------------------------------------------------- 10.4 signature


def peerid_payload(prefix: str, message: bytes) -> bytes:
    """libocr's domain-separated signing payload of `message` under `prefix` (10.4)."""
    p = prefix.encode()
    head = _PAYLOAD_HEAD + u64(len(p)) + p
    if len(message) <= _SHORT_MESSAGE_MAX:
        return head + b"\x00" + u64(len(message)) + message
    return head + b"\x01" + hashlib.sha256(message).digest()


def relay_payload(response_hash: bytes) -> bytes:
    """The 174 bytes a relay node signs for a response hash."""
    return peerid_payload(RELAY_PREFIX, response_hash)


class NodeKey:
    """A node's Ed25519 P2P key: its public half is the node's peer id (10.4)."""

    __slots__ = ("_private", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != ED25519_SEED_SIZE:
            raise InvalidKeyError(f"an Ed25519 seed is {ED25519_SEED_SIZE} bytes, got {len(seed)}")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._private.public_key().public_bytes_raw()

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        """A key from its seed as 64 hex digits (surrounding whitespace ignored)."""
        try:
            seed = bytes.fromhex(text.strip())
        except ValueError:
            raise InvalidKeyError("the key is not hex") from None
        return cls(seed)

    def sign(self, payload: bytes) -> bytes:
        """Pure Ed25519 (RFC 8032, deterministic) over `payload`: 64 bytes."""
        return self._private.sign(payload)

    def sign_hash(self, response_hash: bytes) -> current.RelayResponseSignature:
        """The node's `RelayResponseSignature` for a response hash."""
        return current.RelayResponseSignature(
            signer=self.public_key, signature=self.sign(relay_payload(response_hash))
        )

    def __repr__(self) -> str:  # never the seed
        return f"NodeKey(public_key={self.public_key.hex()})"


def verify(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    """Go's `ed25519.Verify`, except that a key of the wrong length is False, not a panic."""
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    if int.from_bytes(signature[32:], "little") >= _GROUP_ORDER:
        return False  # non-canonical S: Go refuses it (OpenSSL does too; kept explicit)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def find_signer(keys: Sequence[bytes], payload: bytes, signature: bytes) -> int | None:
    """The index of the first key, in the given order, that verifies; None when none does."""
    for i, key in enumerate(keys):
        if verify(key, payload, signature):
            return i
    return None


def check_relay_signature(
    signers: Sequence[bytes], response_hash: bytes, signature: bytes | None
) -> int:
    """The enclave's check of one entry (10.6 step 4): the index, in configuration order, of
    the first signer whose key verifies `signature` over `relay_payload(response_hash)`.

    The entry's own `signer` claim is never consulted. Raises SignatureRejected.
    """
    sig = signature or b""
    if len(sig) != ED25519_SIGNATURE_SIZE:
        raise SignatureRejected(
            f"invalid signature length: expected {ED25519_SIGNATURE_SIZE} bytes, got {len(sig)}"
        )
    index = find_signer(signers, relay_payload(response_hash), sig)
    if index is None:
        raise SignatureRejected("signature not from any allowed signer")
    return index


# --------------------------------------------------------------------------- 10.5 wire JSON


def _signed_fields(
    key: NodeKey, response_hash: bytes
) -> tuple[current.RelayResponseSignature, tuple[current.RelayResponseSignature, ...]]:
    signature = key.sign_hash(response_hash)
    # A node fills the deprecated `signatures` with the same object (N2+).
    return signature, (signature,)


def sign_secrets(
    key: NodeKey, params: SecretsParams, result: rpc.SecretsResponseResult
) -> current.SignedSecretsResponseResult:
    """The signed secrets result; InvalidParamsError when Validate fails (the relay: -32603)."""
    signature, signatures = _signed_fields(key, secrets_response_hash(params, result))
    return current.SignedSecretsResponseResult(
        result=result, signatures=signatures, signature=signature
    )


def sign_capability(
    key: NodeKey, params: CapabilityParams, result: rpc.CapabilityResponseResult
) -> current.SignedCapabilityResponseResult:
    """The signed capability result; InvalidParamsError when Validate fails."""
    signature, signatures = _signed_fields(key, capability_response_hash(params, result))
    return current.SignedCapabilityResponseResult(
        result=result, signatures=signatures, signature=signature
    )


def sign_result_json(
    key: NodeKey,
    method: str,
    params: SecretsParams | CapabilityParams,
    result: rpc.SecretsResponseResult | rpc.CapabilityResponseResult,
) -> bytes:
    """The node's JSON-RPC `result` value: Go's `json.Marshal` of the signed object."""
    if method == rpc.MethodSecretsGet:
        if not isinstance(params, SecretsParams) or not isinstance(
            result, rpc.SecretsResponseResult
        ):
            raise TypeError("secrets params and result expected")
        return current.encode_signed_secrets_result(sign_secrets(key, params, result))
    if method == rpc.MethodCapabilityExec:
        if not isinstance(params, CapabilityParams) or not isinstance(
            result, rpc.CapabilityResponseResult
        ):
            raise TypeError("capability params and result expected")
        return current.encode_signed_capability_result(sign_capability(key, params, result))
    raise UnknownMethodError(f"unknown relay method: {method}")
