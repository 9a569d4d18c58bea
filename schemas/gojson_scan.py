"""Go's JSON scanner: exact validation, Go's syntax error texts, and a parse tree for decoding.

Go's `json.Unmarshal` first runs its byte-at-a-time scanner over the whole input and fails
with the first syntax error; only valid text is decoded. `parse` does both in one left-to-right
pass and raises the same first error with the same text. It follows Go's scanner states at token
boundaries and jumps over runs that cannot fail (whitespace, plain string bytes, digits) with
regular expressions, so a typical request costs a few dozen steps, not one per byte; when a
fast match fails it falls back to walking the token byte by byte to name the exact byte.

Quirks kept on purpose because Go has them:
- at the end of input Go feeds one space to the scanner, so `-` alone fails with
  `invalid character ' ' in numeric literal`, while `"abc` fails with
  `unexpected end of JSON input`;
- nesting deeper than 10000 arrays/objects fails with `invalid character '[' exceeded max depth`;
- `01` is `0` followed by a stray `1` (`invalid character '1' after top-level value`).

Strings are decoded as Go's decoder does: each byte that is not part of valid UTF-8 becomes
U+FFFD, and so does each `\\uXXXX` surrogate escape that is not a proper high+low pair.
"""

from __future__ import annotations

import codecs
import json.decoder
import re
from typing import Final, TypeAlias

import msgspec

from schemas.gojson_errors import GoSyntaxError
from schemas.gojson_strconv import quote_char

MAX_NESTING_DEPTH: Final = 10000

_WS = re.compile(rb"[ \t\r\n]*")
_STRING = re.compile(rb'"([^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*)"')
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_OR_BACKSLASH = bytes(range(0x20)) + b"\\"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_SHORT_ESCAPES = frozenset(b'bfnrt\\/"')
_UNEXPECTED_END = "unexpected end of JSON input"


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    # Go's decoder writes one U+FFFD per byte that does not start a valid UTF-8 sequence.
    # CPython reports maximal invalid subparts, which never contain a byte that could start a
    # valid sequence, so one U+FFFD per reported byte is exactly Go's result.
    if isinstance(exc, UnicodeDecodeError):
        return "\ufffd" * (exc.end - exc.start), exc.end
    raise exc


GO_REPLACE: Final = "schemas.gojson.replace"
codecs.register_error(GO_REPLACE, _go_replace)


class JSONNumber:
    """A JSON number, kept as its text (the relay's structs have no numeric fields)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JSONNumber({self.text!r})"


class JSONObject:
    """A JSON object in input order, duplicates kept: (key, value, value start, value end)."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: list[tuple[str, JSONValue, int, int]] = []

    def __repr__(self) -> str:
        return f"JSONObject({[(k, v) for k, v, _, _ in self.members]!r})"


JSONValue: TypeAlias = "str | bool | JSONNumber | JSONObject | list[JSONValue] | None"


def _error(byte: int, context: str, offset: int) -> GoSyntaxError:
    return GoSyntaxError(f"invalid character {quote_char(byte)} {context}", offset)


def _at(data: bytes, i: int) -> tuple[int, int]:
    """The byte Go's scanner sees at `i` and its error offset: a space at the end of input."""
    if i < len(data):
        return data[i], i + 1
    return 0x20, len(data)


def decode_string(raw: bytes) -> str:
    """The Go value of a JSON string's contents (between the quotes, already validated)."""
    if b"\\" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", GO_REPLACE)
    text = raw.decode("utf-8", GO_REPLACE)
    # The escapes are valid (the scanner checked), so CPython's C scanner can resolve them; it
    # pairs surrogate escapes exactly as Go does and leaves the unpaired ones, which Go turns
    # into U+FFFD.
    value: str = json.decoder.scanstring('"' + text + '"', 1)[0]  # type: ignore[attr-defined]
    if "\\u" in text:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _scan_string(data: bytes, i: int) -> tuple[str, int]:
    """A string starting at `data[i] == '"'`: its value and the index after it."""
    # Fast path for the common string without escapes: memchr to the closing quote, then one
    # C pass to make sure no control byte or backslash hides in between (~1 ns per byte,
    # against ~4 for the regular expression below).
    end = data.find(b'"', i + 1)
    if end > 0:
        raw = data[i + 1 : end]
        if len(raw.translate(None, _CONTROL_OR_BACKSLASH)) == len(raw):
            return decode_string(raw), end + 1
    m = _STRING.match(data, i)
    if m is not None:
        return decode_string(m.group(1)), m.end()
    raise _string_error(data, i)


def _string_error(data: bytes, i: int) -> GoSyntaxError:
    """Walk an invalid string the way Go's scanner does and name the first bad byte."""
    n = len(data)
    j = i + 1
    while True:
        j = _PLAIN.match(data, j).end()  # type: ignore[union-attr]
        if j >= n:
            return GoSyntaxError(_UNEXPECTED_END, n)
        c = data[j]
        if c < 0x20:
            return _error(c, "in string literal", j + 1)
        if c == 0x22:  # pragma: no cover - a closed string would have matched _STRING
            raise AssertionError("string scanner out of sync")
        esc, off = _at(data, j + 1)
        if esc in _SHORT_ESCAPES:
            j += 2
            continue
        if esc != 0x75:  # 'u'
            return _error(esc, "in string escape code", off)
        for k in range(j + 2, j + 6):
            h, off = _at(data, k)
            if h not in _HEX:
                return _error(h, "in \\u hexadecimal character escape", off)
        j += 6


def _scan_number(data: bytes, i: int) -> int:
    """A number starting at `i`: the index where it ends (the byte there is not consumed)."""
    m = _NUMBER.match(data, i)
    if m is not None:
        end = m.end()
        if end == len(data) or data[end] not in b".eE":
            return end
    return _number_by_bytes(data, i)


def _number_by_bytes(data: bytes, i: int) -> int:
    """Go's number states, byte by byte, for the inputs the regular expression cannot settle."""
    j = i
    c, off = _at(data, j)
    if c == 0x2D:  # '-'
        j += 1
        c, off = _at(data, j)
        if c not in _DIGITS:
            raise _error(c, "in numeric literal", off)
    if c == 0x30:  # a leading zero takes no more digits
        j += 1
    else:
        while j < len(data) and data[j] in _DIGITS:
            j += 1
    c, off = _at(data, j)
    if c == 0x2E:  # '.'
        j += 1
        c, off = _at(data, j)
        if c not in _DIGITS:
            raise _error(c, "after decimal point in numeric literal", off)
        while j < len(data) and data[j] in _DIGITS:
            j += 1
        c, off = _at(data, j)
    if c in (0x65, 0x45):  # 'e', 'E'
        j += 1
        c, off = _at(data, j)
        if c in (0x2B, 0x2D):
            j += 1
            c, off = _at(data, j)
        if c not in _DIGITS:
            raise _error(c, "in exponent of numeric literal", off)
        while j < len(data) and data[j] in _DIGITS:
            j += 1
    return j


_LITERALS: Final = {
    0x74: (b"true", True, "true"),
    0x66: (b"false", False, "false"),
    0x6E: (b"null", None, "null"),
}


def _scan_literal(data: bytes, i: int) -> tuple[bool | None, int]:
    word, value, name = _LITERALS[data[i]]
    end = i + len(word)
    if data[i:end] == word:
        return value, end
    for k in range(1, len(word)):
        c, off = _at(data, i + k)
        if c != word[k]:
            raise _error(c, f"in literal {name} (expecting {quote_char(word[k])})", off)
    raise AssertionError("literal scanner out of sync")  # pragma: no cover


# Parser states, named after Go's scanner functions.
_BEGIN_VALUE, _BEGIN_VALUE_OR_EMPTY, _BEGIN_STRING, _BEGIN_STRING_OR_EMPTY, _END_VALUE = range(5)


class _Frame:
    """An open array or object: the container, where it started, and the pending key."""

    __slots__ = ("container", "key", "start")

    def __init__(self, container: list[JSONValue] | JSONObject, start: int) -> None:
        self.container = container
        self.start = start
        self.key = ""


def parse(data: bytes) -> JSONValue:
    """Validate `data` as Go does and return its parse tree, or raise Go's `GoSyntaxError`."""
    n = len(data)
    ws = _WS.match
    stack: list[_Frame] = []
    state = _BEGIN_VALUE
    i = 0
    value: JSONValue = None
    start = 0
    while True:
        i = ws(data, i).end()  # type: ignore[union-attr]
        if i >= n:
            if state == _END_VALUE and not stack:
                return value
            raise GoSyntaxError(_UNEXPECTED_END, n)
        c = data[i]
        if state == _END_VALUE:
            if not stack:
                raise _error(c, "after top-level value", i + 1)
            is_array = isinstance(stack[-1].container, list)
            if c == 0x2C:  # ','
                state = _BEGIN_VALUE if is_array else _BEGIN_STRING
                i += 1
                continue
            if is_array and c != 0x5D:  # ']'
                raise _error(c, "after array element", i + 1)
            if not is_array and c != 0x7D:  # '}'
                raise _error(c, "after object key:value pair", i + 1)
            i += 1
            frame = stack.pop()
            value, start = frame.container, frame.start
        elif state == _BEGIN_STRING_OR_EMPTY and c == 0x7D:
            i += 1
            frame = stack.pop()
            value, start = frame.container, frame.start
        elif state in (_BEGIN_STRING, _BEGIN_STRING_OR_EMPTY):
            if c != 0x22:
                raise _error(c, "looking for beginning of object key string", i + 1)
            key, i = _scan_string(data, i)
            i = ws(data, i).end()  # type: ignore[union-attr]
            if i >= n:
                raise GoSyntaxError(_UNEXPECTED_END, n)
            if data[i] != 0x3A:  # ':'
                raise _error(data[i], "after object key", i + 1)
            stack[-1].key = key
            state = _BEGIN_VALUE
            i += 1
            continue
        elif state == _BEGIN_VALUE_OR_EMPTY and c == 0x5D:
            i += 1
            frame = stack.pop()
            value, start = frame.container, frame.start
        elif c == 0x7B or c == 0x5B:  # '{' or '['
            if len(stack) >= MAX_NESTING_DEPTH:
                raise _error(c, "exceeded max depth", i + 1)
            if c == 0x7B:
                stack.append(_Frame(JSONObject(), i))
                state = _BEGIN_STRING_OR_EMPTY
            else:
                stack.append(_Frame([], i))
                state = _BEGIN_VALUE_OR_EMPTY
            i += 1
            continue
        else:
            start = i
            if c == 0x22:
                value, i = _scan_string(data, i)
            elif c == 0x2D or 0x30 <= c <= 0x39:
                i = _scan_number(data, i)
                value = JSONNumber(data[start:i].decode("ascii"))
            elif c in _LITERALS:
                value, i = _scan_literal(data, i)
            else:
                raise _error(c, "looking for beginning of value", i + 1)
        # A value is complete: attach it to its container (or finish the top level).
        state = _END_VALUE
        if stack:
            top = stack[-1]
            if isinstance(top.container, list):
                top.container.append(value)
            else:
                top.container.members.append((top.key, value, start, i))


def check_valid(data: bytes) -> None:
    """Raise Go's syntax error if `data` is not exactly one JSON value (with whitespace)."""
    parse(data)


_STRING_OR_SPACE = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\r\n]+')


def accepted_by_msgspec(data: bytes) -> bool:
    """True when msgspec parses `data`; its grammar is no looser than Go's (fuzz-tested), so
    this is a fast sufficient test of validity. False means "ask `parse`", nothing more."""
    try:
        msgspec.json.decode(data)
    except Exception:  # any refusal (syntax, UTF-8, depth, range) defers to the exact scanner
        return False
    return True


def compact(data: bytes) -> bytes:
    """Go's `json.Compact`: validate, then drop insignificant whitespace, keeping all else."""
    if not accepted_by_msgspec(data):
        check_valid(data)
    if not any(ws in data for ws in (b" ", b"\t", b"\r", b"\n")):
        return data
    return _STRING_OR_SPACE.sub(lambda m: m.group(1) or b"", data)
