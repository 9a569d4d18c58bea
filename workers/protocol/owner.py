"""Owner addresses as the relay checks and normalises them (PROTOCOL 4.1 steps 2-3, 5.1).

- `is_hex_address` is go-ethereum's `common.IsHexAddress`: an optional `0x`/`0X` prefix, then
  exactly 40 hex digits of either case. The checksum is not validated.
- `to_checksum_address` is go-ethereum's `HexToAddress(s).Hex()`: EIP-55 mixed case over
  legacy Keccak-256 (not SHA3-256) of the 40 lowercase hex digits, always with `0x`.
- `normalize_owner` combines them and fails with the relay's wire message
  `invalid owner address: "<owner>"` (Go `%q` quoting, see `go_quote`).
"""

from __future__ import annotations

from typing import Final

from Crypto.Hash import keccak

from schemas.gojson_strconv import go_quote

__all__ = [
    "InvalidOwnerError",
    "go_quote",
    "is_hex_address",
    "normalize_owner",
    "to_checksum_address",
]

_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_ADDRESS_HEX_LENGTH: Final = 40


class InvalidOwnerError(ValueError):
    """The owner is not a hex address; `message` is the relay's -32602 wire text."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.message = f"invalid owner address: {go_quote(owner)}"
        super().__init__(self.message)


def _strip_prefix(s: str) -> str:
    if len(s) >= 2 and s[0] == "0" and s[1] in "xX":
        return s[2:]
    return s


def is_hex_address(s: str) -> bool:
    """go-ethereum `IsHexAddress`: optional 0x/0X, then exactly 40 hex digits."""
    digits = _strip_prefix(s)
    return len(digits) == _ADDRESS_HEX_LENGTH and all(c in _HEX_DIGITS for c in digits)


def to_checksum_address(address: str) -> str:
    """The EIP-55 form (`0x` + mixed-case hex) of a hex address; raises InvalidOwnerError."""
    if not is_hex_address(address):
        raise InvalidOwnerError(address)
    lower = _strip_prefix(address).lower()
    digest = keccak.new(digest_bits=256, data=lower.encode("ascii")).hexdigest()
    # A letter is upper-cased when the hash nibble at its position is 8 or more.
    return "0x" + "".join(
        c.upper() if c > "9" and int(nibble, 16) >= 8 else c
        for c, nibble in zip(lower, digest, strict=False)
    )


def normalize_owner(owner: str) -> str:
    """The owner as the vault stores it (EIP-55), or InvalidOwnerError with the wire text."""
    return to_checksum_address(owner)
