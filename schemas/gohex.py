"""Go's encoding/hex.DecodeString, with its error texts (vault answers, trusted PCR values).

Pure: no I/O, so the attestation library and the dispatch actors share it.
"""

from __future__ import annotations

_HEX_BYTES = frozenset(b"0123456789abcdefABCDEF")


def _go_sharp_u(byte: int) -> str:
    """Go's `%#U` of a byte as a rune: `U+00C3 'Ã'`, the character only when strconv.IsPrint."""
    printable = 0x20 <= byte < 0x7F or (0xA1 <= byte <= 0xFF and byte != 0xAD)
    return f"U+{byte:04X} '{chr(byte)}'" if printable else f"U+{byte:04X}"


def go_hex_decode(text: str) -> bytes:
    """encoding/hex.DecodeString: either case, odd length rejected, Go's error texts.

    Go scans bytes, not characters: a non-ASCII character is reported by its first UTF-8 byte.
    """
    for byte in text.encode("utf-8", "surrogatepass"):
        if byte not in _HEX_BYTES:
            raise ValueError(f"encoding/hex: invalid byte: {_go_sharp_u(byte)}")
    if len(text) % 2:
        raise ValueError("encoding/hex: odd length hex string")
    return bytes.fromhex(text)
