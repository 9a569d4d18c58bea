"""The one entry point: `Verifier.verify(document, now=..., ...)` -> VerifiedDocument or an error.

Verify once (structure, chain at `now`, COSE signature), then match the PCR triple against every
trusted set with one dictionary lookup, so the cost does not grow with the number of sets
(upstream re-verifies the whole document per set). The verifier never reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from workers.attestation.chain import ChainValidator
from workers.attestation.document import (
    CoseSign1,
    Payload,
    decode_cose,
    decode_payload,
    signature_structure,
)
from workers.attestation.errors import AttestationError, FormatError, PolicyError, SignatureError
from workers.attestation.measurements import MeasurementIndex, PcrSet
from workers.attestation.roots import TrustRoots

_P384_SIGNATURE_BYTES = 96
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """A document that passed every check; `matched` is the trusted set it matched (if asked)."""

    module_id: str
    timestamp_ms: int
    digest: str
    pcrs: dict[int, bytes]
    user_data: bytes | None
    nonce: bytes | None
    public_key: bytes | None
    certificate: bytes
    is_debug: bool
    matched: PcrSet | None


@contextmanager
def _boundary() -> Iterator[None]:
    """The one place where anything that is not already an AttestationError becomes one."""
    try:
        yield
    except AttestationError:
        raise
    except Exception as exc:  # cbor2 / cryptography raise many types on hostile input
        raise FormatError("malformed", f"attestation document rejected: {exc!r}") from exc


def decode_document(document: bytes) -> tuple[CoseSign1, Payload]:
    """Structure only, no chain and no signature (for `relay attest inspect`): never trust it."""
    with _boundary():
        cose = decode_cose(document)
        return cose, decode_payload(cose.payload)


class Verifier:
    """Verifies documents against fixed trust roots; keep one per process so its caches pay off.

    `cache=False` re-parses every certificate and re-proves every link on each call (the "cold"
    benchmark mode); with the cache a known chain costs only the COSE signature check.
    """

    def __init__(self, roots: TrustRoots, *, cache_size: int = 1024, cache: bool = True) -> None:
        self.roots = roots
        self._chain = ChainValidator(roots.ders, cache=cache, cache_size=cache_size)

    def verify(
        self,
        document: bytes,
        *,
        now: float,
        expected_user_data: bytes | None = None,
        trusted: MeasurementIndex | None = None,
        max_age_s: float | None = None,
    ) -> VerifiedDocument:
        """Every check of PROTOCOL 3.6 / NITRO.md at `now` (UNIX seconds), then the policy ones.

        Whatever `document` holds, only AttestationError escapes. A non-finite `now` or a
        negative `max_age_s` is the caller's bug, not the document's: ValueError.
        """
        if not math.isfinite(now) or (max_age_s is not None and not max_age_s >= 0):
            raise ValueError("now must be a finite UNIX time and max_age_s a non-negative number")
        with _boundary():
            return self._verify(document, now, expected_user_data, trusted, max_age_s)

    def _verify(
        self,
        document: bytes,
        now: float,
        expected_user_data: bytes | None,
        trusted: MeasurementIndex | None,
        max_age_s: float | None,
    ) -> VerifiedDocument:
        cose = decode_cose(document)
        payload = decode_payload(cose.payload)
        leaf = self._chain.validate(payload.certificate, payload.cabundle, now)
        key = leaf.public_key
        assert key is not None  # validate() guarantees an EC key
        if not isinstance(key.curve, ec.SECP384R1):
            raise SignatureError(
                "unsupported_curve", f"leaf key curve {key.curve.name} is not P-384"
            )
        signature = cose.signature
        if len(signature) != _P384_SIGNATURE_BYTES:
            # COSE signatures are raw r||s; a DER-shaped signature is a different encoding.
            raise SignatureError(
                "bad_signature_encoding",
                f"signature is {len(signature)} bytes, want raw r||s of {_P384_SIGNATURE_BYTES}",
            )
        r = int.from_bytes(signature[:48], "big")
        s = int.from_bytes(signature[48:], "big")
        try:
            # High-S signatures are normal for AWS and must verify: no low-S rule here.
            key.verify(
                encode_dss_signature(r, s),
                signature_structure(cose.protected, cose.payload),
                _ECDSA_SHA384,
            )
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                "signature_invalid", "Payload's signature does not match signature from certificate"
            ) from exc

        if max_age_s is not None and abs(now * 1000.0 - payload.timestamp_ms) > max_age_s * 1000.0:
            raise PolicyError("stale", "attestation timestamp is outside the allowed window")
        if expected_user_data is not None and payload.user_data != expected_user_data:
            got = (payload.user_data or b"").hex()
            raise PolicyError(
                "user_data_mismatch", f"expected user data {expected_user_data.hex()}, got {got}"
            )
        matched: PcrSet | None = None
        if trusted is not None:
            if len(payload.pcrs) < 3:
                raise PolicyError(
                    "pcr_mismatch",
                    f"attestation document has {len(payload.pcrs)} PCRs, need at least 3",
                )
            matched = trusted.match(payload.pcrs)
            if matched is None:
                raise PolicyError("pcr_mismatch", trusted.explain(payload.pcrs))
        zero = all(not any(payload.pcrs.get(i, b"\x00")) for i in range(3))
        return VerifiedDocument(
            module_id=payload.module_id,
            timestamp_ms=payload.timestamp_ms,
            digest=payload.digest,
            pcrs=payload.pcrs,
            user_data=payload.user_data,
            nonce=payload.nonce,
            public_key=payload.public_key,
            certificate=payload.certificate,
            is_debug=zero,
            matched=matched,
        )
