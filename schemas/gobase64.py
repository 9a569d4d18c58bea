"""Go's `base64.StdEncoding` decoding, with Go's `illegal base64 data at input byte N` errors.

Strict padding, CR and LF skipped anywhere: the attestation and payload fields (PROTOCOL 3.2,
8.2), and every `[]byte` field `encoding/json` decodes (it calls `StdEncoding.Decode`).
Here, below the codec, so `schemas.gojson` and the pure libraries share one implementation.
"""

from __future__ import annotations

import binascii
import re
from typing import Final

__all__ = ["GoBase64Error", "go_base64_decode", "go_base64_error"]

_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_ALPHABET_RUN: Final = re.compile(rb"[A-Za-z0-9+/]*")
_NEWLINES: Final = (0x0A, 0x0D)


class GoBase64Error(ValueError):
    """Go's `base64.CorruptInputError`; `message` is its text, `offset` the byte index."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.message = f"illegal base64 data at input byte {offset}"
        super().__init__(self.message)


def _corrupt_offset(src: bytes) -> int | None:
    """Where Go's `StdEncoding.Decode` reports the input corrupt, or None if it decodes.

    Go decodes quantum by quantum (4 symbols); CR and LF are skipped anywhere; at the end of
    input inside a quantum the error is at `si - j`; `=` ends the data and must be followed by
    the padding it completes, then only CR/LF.
    """
    n = len(src)
    si = j = 0
    while True:
        run = _ALPHABET_RUN.match(src, si).end() - si  # type: ignore[union-attr]
        si += run
        j = (j + run) % 4
        if si == n:
            return None if j == 0 else si - j
        c = src[si]
        si += 1
        if c in _NEWLINES:
            continue
        if c != 0x3D or j < 2:  # not '=', or padding too early
            return si - 1
        if j == 2:  # "==" expected: the second '=' may follow newlines
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si == n:
                return n
            if src[si] != 0x3D:
                return si - 1
            si += 1
        while si < n and src[si] in _NEWLINES:
            si += 1
        return si if si < n else None


def _canonical(src: bytes) -> bool:
    """Whole quanta of alphabet symbols, the last one possibly `XY==` or `XYZ=`."""
    # One C pass (translate) instead of a regular expression: ~4x faster on a 6 KB document.
    rest = src.translate(None, _ALPHABET)
    return len(src) % 4 == 0 and rest in (b"", b"=", b"==") and src.endswith(rest)


def go_base64_decode(text: str | bytes) -> bytes:
    """`base64.StdEncoding.DecodeString` as Go does it; raises GoBase64Error."""
    src = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not _canonical(src):
        offset = _corrupt_offset(src)
        if offset is not None:
            raise GoBase64Error(offset)
        src = src.replace(b"\r", b"").replace(b"\n", b"")
    return binascii.a2b_base64(src)


def go_base64_error(text: str | bytes) -> str:
    """Go's error text for decoding `text`, or "" when Go decodes it."""
    try:
        go_base64_decode(text)
    except GoBase64Error as exc:
        return exc.message
    return ""
