"""Slow, obviously-faithful models of Go's JSON scanner, string decoder and string encoder.

They follow Go's documented behaviour one byte at a time, with no shortcuts, so the fast
implementations in `schemas.gojson*` can be checked against them on many generated inputs
(the other test_gojson modules import them). The tests at the end check the models themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.gojson_strconv import quote_char

_SPACE = b" \t\r\n"
_HEX = b"0123456789abcdefABCDEF"
_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = range(3)


class ReferenceSyntaxError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class GoScanner:
    """Go's scanner: one state function per step, a parse-state stack, errors as Go words them."""

    def __init__(self) -> None:
        self.step: Callable[[int], bool] = self.begin_value
        self.stack: list[int] = []
        self.err: tuple[str, int] | None = None
        self.end_top = False
        self.bytes = 0

    def error(self, c: int, context: str) -> bool:
        self.err = (f"invalid character {quote_char(c)} {context}", self.bytes)
        self.step = lambda c: False
        return False

    def push(self, c: int, state: int) -> bool:
        self.stack.append(state)
        if len(self.stack) > 10000:
            return self.error(c, "exceeded max depth")
        return True

    def begin_value_or_empty(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord("]"):
            return self.end_value(c)
        return self.begin_value(c)

    def begin_value(self, c: int) -> bool:
        if c in _SPACE:
            return True
        ch = chr(c)
        if ch == "{":
            self.step = self.begin_string_or_empty
            return self.push(c, _OBJECT_KEY)
        if ch == "[":
            self.step = self.begin_value_or_empty
            return self.push(c, _ARRAY_VALUE)
        simple = {
            '"': self.in_string,
            "-": self.neg,
            "0": self.zero,
            "t": self.literal("true", 1),
            "f": self.literal("false", 1),
            "n": self.literal("null", 1),
        }
        if ch in simple:
            self.step = simple[ch]
            return True
        if "1" <= ch <= "9":
            self.step = self.one
            return True
        return self.error(c, "looking for beginning of value")

    def begin_string_or_empty(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord("}"):
            self.stack[-1] = _OBJECT_VALUE
            return self.end_value(c)
        return self.begin_string(c)

    def begin_string(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord('"'):
            self.step = self.in_string
            return True
        return self.error(c, "looking for beginning of object key string")

    def end_value(self, c: int) -> bool:
        if not self.stack:
            self.step = self.end_top_state
            self.end_top = True
            return self.end_top_state(c)
        if c in _SPACE:
            self.step = self.end_value
            return True
        top = self.stack[-1]
        if top == _OBJECT_KEY:
            if c == ord(":"):
                self.stack[-1] = _OBJECT_VALUE
                self.step = self.begin_value
                return True
            return self.error(c, "after object key")
        if top == _OBJECT_VALUE:
            if c == ord(","):
                self.stack[-1] = _OBJECT_KEY
                self.step = self.begin_string
                return True
            if c == ord("}"):
                return self.pop()
            return self.error(c, "after object key:value pair")
        if c == ord(","):
            self.step = self.begin_value
            return True
        if c == ord("]"):
            return self.pop()
        return self.error(c, "after array element")

    def pop(self) -> bool:
        self.stack.pop()
        if not self.stack:
            self.step = self.end_top_state
            self.end_top = True
        else:
            self.step = self.end_value
        return True

    def end_top_state(self, c: int) -> bool:
        if c not in _SPACE and self.err is None:
            self.error(c, "after top-level value")
        return True

    def in_string(self, c: int) -> bool:
        if c == ord('"'):
            self.step = self.end_value
            return True
        if c == ord("\\"):
            self.step = self.in_string_esc
            return True
        if c < 0x20:
            return self.error(c, "in string literal")
        return True

    def in_string_esc(self, c: int) -> bool:
        if c in b'bfnrt\\/"':
            self.step = self.in_string
            return True
        if c == ord("u"):
            self.step = self.hex_digit(0)
            return True
        return self.error(c, "in string escape code")

    def hex_digit(self, seen: int) -> Callable[[int], bool]:
        def state(c: int) -> bool:
            if c in _HEX:
                self.step = self.in_string if seen == 3 else self.hex_digit(seen + 1)
                return True
            return self.error(c, "in \\u hexadecimal character escape")

        return state

    def neg(self, c: int) -> bool:
        if c == ord("0"):
            self.step = self.zero
            return True
        if ord("1") <= c <= ord("9"):
            self.step = self.one
            return True
        return self.error(c, "in numeric literal")

    def one(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return True
        return self.zero(c)

    def zero(self, c: int) -> bool:
        if c == ord("."):
            self.step = self.dot
            return True
        if c in b"eE":
            self.step = self.exp
            return True
        return self.end_value(c)

    def dot(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            self.step = self.dot0
            return True
        return self.error(c, "after decimal point in numeric literal")

    def dot0(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return True
        if c in b"eE":
            self.step = self.exp
            return True
        return self.end_value(c)

    def exp(self, c: int) -> bool:
        if c in b"+-":
            self.step = self.exp_sign
            return True
        return self.exp_sign(c)

    def exp_sign(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            self.step = self.exp0
            return True
        return self.error(c, "in exponent of numeric literal")

    def exp0(self, c: int) -> bool:
        if ord("0") <= c <= ord("9"):
            return True
        return self.end_value(c)

    def literal(self, word: str, at: int) -> Callable[[int], bool]:
        def state(c: int) -> bool:
            if c == ord(word[at]):
                self.step = self.end_value if at + 1 == len(word) else self.literal(word, at + 1)
                return True
            return self.error(c, f"in literal {word} (expecting {quote_char(ord(word[at]))})")

        return state


def reference_check_valid(data: bytes) -> None:
    """Go's checkValid: feed every byte, then end of input (one space); raise the first error."""
    s = GoScanner()
    for c in data:
        s.bytes += 1
        s.step(c)
        if s.err is not None:
            raise ReferenceSyntaxError(*s.err)
    if s.end_top:
        return
    s.step(0x20)
    if s.err is not None:
        raise ReferenceSyntaxError(*s.err)
    if not s.end_top:
        raise ReferenceSyntaxError("unexpected end of JSON input", s.bytes)


def go_decode_rune(b: bytes, i: int) -> tuple[int, int]:
    """utf8.DecodeRune: (rune, size), or (0xFFFD, 1) for anything that is not valid UTF-8."""
    c0 = b[i]
    if c0 < 0x80:
        return c0, 1
    table = [
        (0xC2, 0xDF, 1, 0x80, 0xBF),
        (0xE0, 0xE0, 2, 0xA0, 0xBF),
        (0xE1, 0xEC, 2, 0x80, 0xBF),
        (0xED, 0xED, 2, 0x80, 0x9F),
        (0xEE, 0xEF, 2, 0x80, 0xBF),
        (0xF0, 0xF0, 3, 0x90, 0xBF),
        (0xF1, 0xF3, 3, 0x80, 0xBF),
        (0xF4, 0xF4, 3, 0x80, 0x8F),
    ]
    for lo, hi, more, second_lo, second_hi in table:
        if lo <= c0 <= hi:
            if i + more >= len(b):  # truncated sequence
                return 0xFFFD, 1
            if not second_lo <= b[i + 1] <= second_hi:
                return 0xFFFD, 1
            if any(not 0x80 <= b[i + k] <= 0xBF for k in range(2, more + 1)):
                return 0xFFFD, 1
            return ord(b[i : i + more + 1].decode("utf-8")), more + 1
    return 0xFFFD, 1


def reference_unquote(raw: bytes) -> str:
    """Go's unquote of valid string contents: escapes, surrogate pairs, invalid bytes as U+FFFD."""
    out: list[str] = []
    i = 0

    def u4(at: int) -> int:
        if raw[at : at + 2] != b"\\u" or len(raw) < at + 6:
            return -1
        return int(raw[at + 2 : at + 6], 16)

    while i < len(raw):
        c = raw[i]
        if c == ord("\\"):
            e = chr(raw[i + 1])
            if e == "u":
                r = u4(i)
                i += 6
                if 0xD800 <= r < 0xE000:
                    r2 = u4(i)
                    if 0xD800 <= r < 0xDC00 and 0xDC00 <= r2 < 0xE000:
                        out.append(chr(0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)))
                        i += 6
                        continue
                    r = 0xFFFD
                out.append(chr(r))
            else:
                out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}.get(e, e))
                i += 2
        else:
            r, size = go_decode_rune(raw, i)
            out.append(chr(r))
            i += size
    return "".join(out)


def reference_go_string(value: str) -> bytes:
    """Go's encodeState.string with HTML escaping, over the Go bytes of `value`."""
    from schemas.gojson_strconv import go_bytes

    b = go_bytes(value)
    out = bytearray(b'"')
    i = 0
    short = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r"}
    short[0x09] = b"\\t"
    while i < len(b):
        c = b[i]
        if c < 0x80:
            if c in short:
                out += short[c]
            elif c < 0x20 or c in b"<>&":
                out += f"\\u{c:04x}".encode()
            else:
                out.append(c)
            i += 1
            continue
        r, size = go_decode_rune(b, i)
        if r == 0xFFFD and size == 1:
            out += b"\\ufffd"
        elif r in (0x2028, 0x2029):
            out += f"\\u{r:04x}".encode()
        else:
            out += b[i : i + size]
        i += size
    out += b'"'
    return bytes(out)


def test_reference_rune_decoder_agrees_with_strict_utf8_on_valid_text() -> None:
    """On valid UTF-8 the model decodes every rune exactly as Python's strict decoder does."""
    text = "aé€😀\U0010ffff\ufffd"
    raw = text.encode()
    runes: list[str] = []
    i = 0
    while i < len(raw):
        rune, size = go_decode_rune(raw, i)
        runes.append(chr(rune))
        i += size
    assert "".join(runes) == text


def test_reference_rune_decoder_rejects_each_invalid_byte_alone() -> None:
    """Truncated, overlong, surrogate and out-of-range sequences decode one byte at a time."""
    for bad in (b"\xe2\x82", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"):
        assert go_decode_rune(bad, 0) == (0xFFFD, 1)


def test_reference_scanner_accepts_json_and_names_the_first_error() -> None:
    """The scanner model accepts a valid document and reports a stray comma as Go does."""
    reference_check_valid(b'{"a":[1,2.5e-3,true,null,"x"]}')
    with pytest.raises(ReferenceSyntaxError) as exc:
        reference_check_valid(b"[1,]")
    assert (exc.value.message, exc.value.offset) == (
        "invalid character ']' looking for beginning of value",
        4,
    )
