"""EnclaveConfig (PROTOCOL 10.7): the relay DON as a current enclave knows it, and the relay's
check of it against the DON the registry describes.

The enclave copies `{signers, master_public_key, t, f}` into every request: the relay DON's
peer ids (32-byte Ed25519 public keys) sorted bytewise, the DON's F, and the vault's threshold
key. It requires F+1 distinct signatures from those signers, so a relay node must refuse a
config that would let fewer or other nodes decide (`check`, upstream's
`verifyEnclaveConfigMatchesDON`). Every failure is -32603 `internal error` on the wire; the
texts below are for the log. `t` and `master_public_key` are compared with nothing; `Validate`
(`workers.protocol.signed`) checks their presence later, when the answer is signed.

The structure and its Go-exact JSON are `schemas.current.EnclaveConfig` and
`schemas.current.ENCLAVE_CONFIG`; `decode` reads a standalone config.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas import current
from workers.protocol.signed import SignedProtocolError

__all__ = ["EnclaveConfigError", "check", "decode", "for_don"]


class EnclaveConfigError(SignedProtocolError):
    """The enclave's config does not match the relay DON; `message` is the internal text."""


def check(config: current.EnclaveConfig | None, don_f: int, members: Sequence[bytes]) -> None:
    """Raise EnclaveConfigError unless `config` names exactly `members` with at least `don_f`.

    A higher F than the DON's is accepted (it only makes the enclave stricter).
    """
    if config is None:
        raise EnclaveConfigError("enclave config is required")
    if config.f < don_f:
        raise EnclaveConfigError(
            f"enclave config F {config.f} does not meet the minimum required DON F {don_f}"
        )
    signers = config.signers or ()
    if len(signers) != len(members):
        raise EnclaveConfigError(
            "enclave config signers count mismatch: "
            f"enclave reports {len(signers)}, expected {len(members)}"
        )
    reported = sorted(s or b"" for s in signers)
    expected = sorted(members)
    for i, (got, want) in enumerate(zip(reported, expected, strict=True)):
        if got != want:
            raise EnclaveConfigError(
                f"enclave config signer mismatch at sorted index {i}: "
                f"enclave reports {got.hex()}, expected {want.hex()}"
            )


def for_don(
    members: Sequence[bytes], don_f: int, master_public_key: bytes, t: int
) -> current.EnclaveConfig:
    """The config a current enclave builds for a DON: signers sorted bytewise, F as is."""
    return current.EnclaveConfig(
        signers=tuple(sorted(members)), master_public_key=master_public_key, t=t, f=don_f
    )


def decode(data: bytes) -> current.EnclaveConfig:
    """Go `json.Unmarshal` of an EnclaveConfig object; raises `schemas.gojson.GoJSONError`."""
    return current.decode_enclave_config(data)
