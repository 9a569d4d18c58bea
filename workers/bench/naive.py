"""The naive baseline: a plain, honest Nitro verifier written the way typical peers write one.

Everything is re-parsed and the whole chain is path-validated (RFC 5280, via cryptography's
`PolicyBuilder`) on every call, with no cache of any kind, and trusted PCR sets are scanned one by
one. It exists only as the yardstick for `relay bench attest`; its verdicts must still be right,
so it performs every check a correct verifier does (NITRO.md section 3).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

from workers.attestation import PcrSet

_COSE_TAG = 18
_PCR_LENGTHS = frozenset({32, 48, 64})


class NaiveError(Exception):
    """The naive verifier rejected a document; the message says why."""


@dataclass(frozen=True, slots=True)
class NaiveResult:
    module_id: str
    timestamp_ms: int
    pcrs: dict[int, bytes]
    user_data: bytes | None
    matched: PcrSet | None


def naive_verify(
    document: bytes,
    *,
    now: float,
    root_der: bytes,
    trusted: Sequence[PcrSet] | None = None,
) -> NaiveResult:
    """Verify `document` at UNIX time `now` against the root `root_der`; NaiveError if rejected."""
    try:
        return _verify(document, now, root_der, trusted)
    except NaiveError:
        raise
    except Exception as exc:  # any library failure on bad input is a rejection, never a crash
        raise NaiveError(f"malformed document: {exc!r}") from exc


def _verify(
    document: bytes, now: float, root_der: bytes, trusted: Sequence[PcrSet] | None
) -> NaiveResult:
    cose = _loads(document)
    if isinstance(cose, cbor2.CBORTag):
        if cose.tag != _COSE_TAG:
            raise NaiveError(f"CBOR tag {cose.tag} is not COSE_Sign1")
        cose = cose.value
    if not isinstance(cose, list | tuple) or len(cose) != 4:
        raise NaiveError("not a COSE_Sign1 array of 4")
    protected, _unprotected, payload, signature = cose
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        raise NaiveError("COSE_Sign1 sections must be byte strings")
    if _loads(protected) != {1: -35}:
        raise NaiveError("protected header is not {1: -35} (ES384)")
    if len(signature) != 96:
        raise NaiveError("signature is not raw r||s of 96 bytes")
    doc = _loads(payload)
    if not isinstance(doc, Mapping):
        raise NaiveError("payload is not a map")
    pcrs = _check_fields(doc)

    # Path validation from scratch: parse every certificate, anchor only the pinned root.
    root = x509.load_der_x509_certificate(root_der)
    leaf = x509.load_der_x509_certificate(doc["certificate"])
    intermediates = [x509.load_der_x509_certificate(der) for der in doc["cabundle"][1:]]
    # The Nitro leaf has no EKU and no SAN, so the end-entity policy must be relaxed; CA
    # certificates still get the WebPKI checks (CA flag, pathLen, keyCertSign).
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(datetime.fromtimestamp(now, UTC))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except x509.verification.VerificationError as exc:
        raise NaiveError(f"certificate chain rejected: {exc}") from exc
    _check_leaf(leaf)

    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise NaiveError("leaf key is not ECDSA P-384")
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der_signature = encode_dss_signature(
        int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    )
    try:
        key.verify(der_signature, to_sign, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise NaiveError("COSE signature does not verify") from exc

    matched = None
    if trusted is not None:
        # The typical loop: compare against each trusted set in turn.
        for candidate in trusted:
            if (pcrs.get(0), pcrs.get(1), pcrs.get(2)) == candidate.key:
                matched = candidate
                break
        else:
            raise NaiveError("PCR0/1/2 match no trusted set")
    return NaiveResult(
        module_id=doc["module_id"],
        timestamp_ms=doc["timestamp"],
        pcrs=pcrs,
        user_data=doc.get("user_data"),
        matched=matched,
    )


def _loads(data: bytes) -> Any:
    """One CBOR item; `cbor2.loads` would silently ignore bytes after it."""
    stream = io.BytesIO(data)
    item = cbor2.CBORDecoder(stream).decode()
    if stream.read(1):
        raise NaiveError("trailing bytes after the CBOR item")
    return item


def _check_fields(doc: Mapping[Any, Any]) -> dict[int, bytes]:
    """AWS syntactic validation (NITRO.md section 1 table); returns the PCR map."""
    module_id, timestamp, pcrs = doc.get("module_id"), doc.get("timestamp"), doc.get("pcrs")
    if not isinstance(module_id, str) or not module_id:
        raise NaiveError("module_id missing")
    if doc.get("digest") != "SHA384":
        raise NaiveError("digest is not SHA384")
    if type(timestamp) is not int or timestamp <= 0:
        raise NaiveError("timestamp missing or not positive")
    if not isinstance(pcrs, Mapping) or not 1 <= len(pcrs) <= 32:
        raise NaiveError("pcrs must hold 1 to 32 entries")
    for index, value in pcrs.items():
        if type(index) is not int or not 0 <= index < 32:
            raise NaiveError(f"bad PCR index {index!r}")
        if not isinstance(value, bytes) or len(value) not in _PCR_LENGTHS:
            raise NaiveError(f"PCR{index} has a bad length")
    certificate, cabundle = doc.get("certificate"), doc.get("cabundle")
    if not isinstance(certificate, bytes) or not 1 <= len(certificate) <= 1024:
        raise NaiveError("certificate missing or oversized")
    if not isinstance(cabundle, list | tuple) or not cabundle:
        raise NaiveError("cabundle missing or empty")
    if not all(isinstance(der, bytes) and 1 <= len(der) <= 1024 for der in cabundle):
        raise NaiveError("cabundle entries must be 1 to 1024 bytes")
    for name, limit in (("public_key", 1024), ("user_data", 512), ("nonce", 512)):
        value = doc.get(name)
        if value is not None and (not isinstance(value, bytes) or len(value) > limit):
            raise NaiveError(f"{name} is not a byte string of at most {limit} bytes")
    return dict(pcrs)


def _check_leaf(leaf: x509.Certificate) -> None:
    """The relaxed end-entity policy skips these, so check them by hand."""
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise NaiveError("leaf certificate is a CA")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise NaiveError("leaf certificate has no keyUsage") from exc
    if not usage.digital_signature:
        raise NaiveError("leaf certificate may not sign (keyUsage)")
    if leaf.signature_algorithm_oid != x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384:
        raise NaiveError("leaf certificate is not signed with ECDSA-SHA384")
