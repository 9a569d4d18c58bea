"""Strict decoding of a COSE_Sign1 Nitro attestation document into typed fields (no crypto)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from workers.attestation.errors import FormatError

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
_COSE_TAG = 18
_ALG_ES384 = -35
_PCR_LENGTHS = frozenset({32, 48, 64})


@dataclass(frozen=True, slots=True)
class CoseSign1:
    protected: bytes
    payload: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Payload:
    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: dict[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None


# The tags cbor2 decodes by itself (found by decoding each tag 0..69999). None belongs in a
# Nitro document, and some are dangerous: value sharing (28/29) and string references (25/256)
# let a few hundred bytes expand into a structure exponentially larger, hashed as a map key
# before any signature is checked (a 2 KB document pinned a verifier for hours).
_CBOR2_BUILTIN_TAGS = (
    *(0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100),
    *(256, 258, 260, 261, 1004, 43000, 55799),
)


def _refuse(tag: int) -> Any:
    def refuse(decoder: Any) -> Any:
        raise ValueError(f"CBOR tag {tag} is not allowed in an attestation document")

    return refuse


_NO_SEMANTIC_TAGS = {tag: _refuse(tag) for tag in _CBOR2_BUILTIN_TAGS}


def _strict_cbor(data: bytes, what: str) -> Any:
    """One CBOR item, nothing after it, no duplicate map keys, no tag that cbor2 would expand;
    indefinite lengths allowed. Other tags stay inert CBORTag values, which decode_cose refuses
    at the top (all but 18) and every field check refuses inside."""
    fp = io.BytesIO(data)
    try:
        # Real 2026 documents use an indefinite-length payload map, so those stay allowed.
        value = cbor2.CBORDecoder(
            fp,
            allow_duplicate_keys=False,
            max_depth=16,
            semantic_decoders=_NO_SEMANTIC_TAGS,
        ).decode()
    except Exception as exc:  # cbor2 raises several types (CBORDecodeError, ValueError, ...)
        raise FormatError("malformed_cbor", f"{what}: CBOR decode error: {exc}") from exc
    if fp.tell() != len(data):
        raise FormatError(
            "trailing_bytes", f"{what}: {len(data) - fp.tell()} trailing bytes after the CBOR item"
        )
    return value


def decode_cose(document: bytes) -> CoseSign1:
    if not isinstance(document, bytes | bytearray | memoryview):
        raise FormatError("not_cose_sign1", "attestation document must be bytes")
    document = bytes(document)
    if not document:
        raise FormatError("not_cose_sign1", "attestation document is empty")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise FormatError("too_large", f"attestation document is {len(document)} bytes")
    item = _strict_cbor(document, "document")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != _COSE_TAG:
            raise FormatError("bad_tag", f"CBOR tag {item.tag} is not COSE_Sign1 (18)")
        item = item.value
    # Inside a tag cbor2 yields tuples, not lists: accept any sequence but not str/bytes.
    if not isinstance(item, Sequence) or isinstance(item, str | bytes) or len(item) != 4:
        raise FormatError("not_cose_sign1", "Data is not a COSESign1 array")
    protected, unprotected, payload, signature = item
    for name, value in (("protected", protected), ("payload", payload), ("signature", signature)):
        if not isinstance(value, bytes):
            raise FormatError("not_cose_sign1", f"COSESign1 {name} section is not a byte string")
        if not value:
            raise FormatError("not_cose_sign1", f"COSESign1 {name} section is nil or empty")
    if not isinstance(unprotected, Mapping):
        raise FormatError("not_cose_sign1", "COSESign1 unprotected header is not a map")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FormatError(
            "too_large", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        )
    header = _strict_cbor(protected, "protected header")
    if not isinstance(header, Mapping):
        raise FormatError("bad_algorithm", "protected header is not a map")
    alg = header.get(1)
    if not (alg == _ALG_ES384 and type(alg) is int) and alg != "ES384":
        raise FormatError("bad_algorithm", "COSESign1 algorithm not ECDSA384")
    return CoseSign1(protected=protected, payload=payload, signature=signature)


def _optional_bytes(fields: Mapping[Any, Any], key: str, limit: int) -> bytes | None:
    value = fields.get(key)
    if value is None:  # NSM writes absent optionals as an explicit null
        return None
    if not isinstance(value, bytes):
        raise FormatError("bad_field", f"{key} must be a byte string")
    if len(value) > limit:
        raise FormatError("bad_field", f"{key} is {len(value)} bytes, limit {limit}")
    return value


def decode_payload(payload: bytes) -> Payload:
    fields = _strict_cbor(payload, "payload")
    if not isinstance(fields, Mapping):
        raise FormatError("bad_field", "Bad attestation document: payload is not a map")
    module_id = fields.get("module_id")
    digest = fields.get("digest")
    timestamp = fields.get("timestamp")
    pcrs = fields.get("pcrs")
    certificate = fields.get("certificate")
    cabundle = fields.get("cabundle")
    if (
        not module_id
        or not digest
        or not timestamp
        or pcrs is None
        or certificate is None
        or cabundle is None
    ):
        raise FormatError("missing_field", "One or more of mandatory fields missing")
    if not isinstance(module_id, str) or not isinstance(digest, str):
        raise FormatError("bad_field", "module_id and digest must be text")
    if type(timestamp) is not int or not 0 < timestamp < 2**63:
        raise FormatError("bad_field", "timestamp must be a positive integer (ms)")
    if digest != "SHA384":
        raise FormatError("bad_digest", f"digest is {digest!r}, not SHA384")
    if not isinstance(pcrs, Mapping) or not 1 <= len(pcrs) <= 32:
        raise FormatError("bad_pcrs", "pcrs must be a map of 1 to 32 entries")
    parsed_pcrs: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if type(index) is not int or not 0 <= index < 32:
            raise FormatError("bad_pcrs", f"PCR index {index!r} out of range")
        if not isinstance(value, bytes) or len(value) not in _PCR_LENGTHS:
            raise FormatError("bad_pcrs", f"PCR{index} must be 32, 48 or 64 bytes")
        parsed_pcrs[index] = value
    if not isinstance(certificate, bytes) or not 1 <= len(certificate) <= 1024:
        raise FormatError("bad_field", "certificate must be 1 to 1024 bytes")
    if (
        not isinstance(cabundle, Sequence)
        or isinstance(cabundle, str | bytes)
        or not cabundle
        or not all(isinstance(c, bytes) and 1 <= len(c) <= 1024 for c in cabundle)
    ):
        raise FormatError(
            "bad_field", "cabundle must hold 1 or more certificates of 1 to 1024 bytes"
        )
    return Payload(
        module_id=module_id,
        digest=digest,
        timestamp_ms=timestamp,
        pcrs=parsed_pcrs,
        certificate=certificate,
        cabundle=tuple(cabundle),
        public_key=_optional_bytes(fields, "public_key", 1024),
        # NSM caps both at 512 bytes; the AWS validation rules say 0..512.
        user_data=_optional_bytes(fields, "user_data", 512),
        nonce=_optional_bytes(fields, "nonce", 512),
    )


def signature_structure(protected: bytes, payload: bytes) -> bytes:
    """cbor(["Signature1", protected, h'', payload]) from the original bytes, never re-encoded."""
    return b"".join(
        (
            b"\x84\x6aSignature1",
            _bstr_head(len(protected)),
            protected,
            b"\x40",
            _bstr_head(len(payload)),
            payload,
        )
    )


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes([0x40 | n])
    if n < 0x100:
        return bytes([0x58, n])
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")
