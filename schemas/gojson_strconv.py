"""Go's `strconv.Quote` (the `%q` verb) and the character quoting of `encoding/json` errors.

Both show up in wire messages (`invalid owner address: "<owner>"`, `invalid character 'x' ...`),
so they must match Go exactly:

- A Go string is bytes. A Python `str` is converted back to the bytes Go would have held:
  surrogate escapes (U+DC80..U+DCFF, as produced by `surrogateescape`) are the raw bytes they
  stand for, and any other lone surrogate is its 3-byte (invalid in UTF-8) encoding.
- Each byte that does not start a valid UTF-8 sequence is written `\\xNN`; `"` and `\\` get a
  backslash; printable runes stay raw; `\\a \\b \\f \\n \\r \\t \\v` use short escapes; other
  control runes below 0x20 and DEL are `\\xNN`; other non-printables are `\\uNNNN` or
  `\\UNNNNNNNN`. Hex digits are lowercase.
- "Printable" is Go's `unicode.IsPrint`: categories L, M, N, P, S plus the ASCII space. Python's
  Unicode database (14.0 on 3.11) is one version behind Go's (15.0), so a rune assigned in 15.0
  is escaped here but printed raw by Go. No relay input depends on such a rune.
"""

from __future__ import annotations

import unicodedata

_SHORT_ESCAPES = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
}


def go_bytes(s: str | bytes) -> bytes:
    """The bytes a Go string holds for `s` (see the module docstring for surrogates)."""
    if isinstance(s, bytes):
        return s
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate outside the escape range: Go would hold its (invalid) 3-byte encoding.
        return b"".join(_char_bytes(ch) for ch in s)


def _char_bytes(ch: str) -> bytes:
    try:
        return ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return ch.encode("utf-8", "surrogatepass")


def is_print(rune: int) -> bool:
    """Go's `unicode.IsPrint` / `strconv.IsPrint` (see the module docstring on versions)."""
    if rune < 0x80:
        return 0x20 <= rune < 0x7F
    if 0xD800 <= rune <= 0xDFFF:
        return False
    return unicodedata.category(chr(rune))[0] in "LMNPS"


def _escape_rune(rune: int) -> str:
    if rune in (0x22, 0x5C):
        return "\\" + chr(rune)
    if is_print(rune):
        return chr(rune)
    short = _SHORT_ESCAPES.get(rune)
    if short is not None:
        return short
    if rune < 0x20 or rune == 0x7F:
        return f"\\x{rune:02x}"
    if rune < 0x10000:
        return f"\\u{rune:04x}"
    return f"\\U{rune:08x}"


def go_quote(s: str | bytes) -> str:
    """`strconv.Quote(s)`: a double-quoted Go string literal for any string, valid or not."""
    raw = go_bytes(s)
    if raw.isascii():
        # Fast path: no decoding needed, and most runes are printable as they are.
        return '"' + "".join(_escape_rune(b) for b in raw) + '"'
    out: list[str] = ['"']
    # surrogateescape turns exactly the bytes Go's DecodeRune rejects into U+DC80..U+DCFF,
    # one per byte, so each can be written as `\xNN` the way Go does.
    for ch in raw.decode("utf-8", "surrogateescape"):
        rune = ord(ch)
        if 0xDC80 <= rune <= 0xDCFF:
            out.append(f"\\x{rune - 0xDC00:02x}")
        else:
            out.append(_escape_rune(rune))
    out.append('"')
    return "".join(out)


def quote_char(byte: int) -> str:
    """`encoding/json`'s quoteChar: how a syntax error names the offending byte.

    Go converts the byte to the rune of the same number (so 0xFF is shown as 'ÿ') and quotes
    it with single quotes; a single quote and a double quote are special-cased.
    """
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(byte))[1:-1] + "'"
