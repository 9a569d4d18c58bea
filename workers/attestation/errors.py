"""The attestation error tree: one base class, four categories, a stable reason code each."""

from __future__ import annotations


class AttestationError(Exception):
    """A document was rejected; `reason` is a stable snake_case code, `message` says why."""

    category = "attestation"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class FormatError(AttestationError):
    """The bytes are not a well-formed Nitro attestation document."""

    category = "format"


class ChainError(AttestationError):
    """The certificate chain does not lead to a trusted root at the verification time."""

    category = "chain"


class SignatureError(AttestationError):
    """The COSE signature does not verify with the leaf certificate's key."""

    category = "signature"


class PolicyError(AttestationError):
    """The document is genuine but not acceptable: user data, PCRs or age."""

    category = "policy"
