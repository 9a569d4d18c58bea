"""Trust roots: the pinned AWS Nitro Enclaves root G1, or an explicit development root."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass

from cryptography import x509

log = logging.getLogger("relay.attestation")

AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

_AWS_ROOT_G1_PEM = """\
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
"""


def _aws_root_der() -> bytes:
    der = base64.b64decode("".join(_AWS_ROOT_G1_PEM.split()))
    # The embedded copy is checked against the published fingerprint at import: a corrupted
    # or edited constant fails loudly instead of silently trusting something else.
    if hashlib.sha256(der).hexdigest() != AWS_NITRO_ROOT_G1_SHA256:
        raise RuntimeError("embedded AWS Nitro root does not match its pinned fingerprint")
    return der


def load_certificates(data: bytes) -> tuple[bytes, ...]:
    """PEM (one or more certificates) or a single DER certificate -> DER bytes."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"failed to parse CA roots: {exc}") from exc
    if not certs:
        raise ValueError("failed to parse CA roots")
    from cryptography.hazmat.primitives.serialization import Encoding

    return tuple(cert.public_bytes(Encoding.DER) for cert in certs)


@dataclass(frozen=True, slots=True)
class TrustRoots:
    """The exact DER certificates a chain may end in."""

    ders: tuple[bytes, ...]
    is_development: bool = False

    @classmethod
    def aws(cls) -> TrustRoots:
        return cls((_aws_root_der(),))

    @classmethod
    def development(cls, pem_or_der: bytes) -> TrustRoots:
        ders = load_certificates(pem_or_der)
        fingerprints = ", ".join(hashlib.sha256(d).hexdigest()[:16] for d in ders)
        log.warning(
            "DEVELOPMENT TRUST ROOT IN USE (%s): attestations are NOT checked against AWS Nitro",
            fingerprints,
        )
        return cls(ders, is_development=True)
