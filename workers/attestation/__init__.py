"""Nitro attestation verification: pure (no asyncio, no NATS), explicit time and roots."""

from workers.attestation.errors import (
    AttestationError,
    ChainError,
    FormatError,
    PolicyError,
    SignatureError,
)
from workers.attestation.measurements import MeasurementIndex, PcrSet
from workers.attestation.roots import AWS_NITRO_ROOT_G1_SHA256, TrustRoots
from workers.attestation.verifier import VerifiedDocument, Verifier

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "AttestationError",
    "ChainError",
    "FormatError",
    "MeasurementIndex",
    "PcrSet",
    "PolicyError",
    "SignatureError",
    "TrustRoots",
    "VerifiedDocument",
    "Verifier",
]
