"""Go `encoding/json` compatibility: decode into Go struct shapes, encode as `json.Marshal`.

Why: the attestation binding hashes Go's re-marshal of the params (PROTOCOL 3.1) and relay
answers must be byte-identical to Go nodes' answers, so "close to Go" is not enough.

Decoding (`unmarshal`) follows `json.Unmarshal` (Go 1.22+, 64-bit) for structs made of string
fields, slices of such structs, `*json.RawMessage` fields, nested and pointer structs, and the
scalar kinds of `gojson_shapes.Kind` (`uint8`, `uint32`, `[]byte`, `[N]uint8`, slices of them,
`map[string]string`) that the current protocol's structs use:

- the whole text is validated first (`gojson_scan.parse`); a syntax error wins over any type
  error and nothing is decoded;
- keys match fields exactly or else case-insensitively with Go's folding: ASCII letters fold
  to upper case, U+212A KELVIN SIGN to `K` and U+017F LONG S to `S`. No other rune folds onto
  an ASCII letter, so no other non-ASCII key can match our ASCII field names;
- unknown keys are ignored; every occurrence of a repeated key is decoded again into the same
  field: a later string replaces, a later `null` or wrong-typed value leaves a string as it was;
  `null` sets a slice or pointer to nil;
- a JSON array decodes element by element into the existing slice: elements that already
  exist (up to the slice's capacity) keep fields the new object does not set, the length
  becomes the array's length, and `[]` is an empty, non-nil slice. The capacity follows Go's
  `reflect.Value.Grow(1)` (runtime growth formula and malloc size classes), because a later,
  longer array re-exposes elements left beyond the length by an earlier, shorter one;
- a type mismatch is recorded (the first one wins, with Go's error context) and decoding goes on;
- a `[]byte` is base64 (`StdEncoding`: a bad string is Go's saved `illegal base64 data at input
  byte N`) or an array of numbers; `uint8`/`uint32` take only a decimal number in range (else
  `number <text>` in the type error); a `[N]uint8` array zero-fills what a shorter JSON array
  leaves and ignores extra elements unchecked; `null` sets slices, maps and pointers to nil and
  leaves everything else as it was; a map decodes into the map already there (repeated key).
  Not modelled: the capacity left behind a base64-decoded `[]byte` (only a later JSON *array*
  with `null` elements on the same key could expose it).

Go type names used in error texts (an assumption where the spec is silent): the relay's types
live in package `confidentialrelay`, the envelope is the generic
`jsonrpc2.Request[encoding/json.RawMessage]` (reflect names type arguments by import path).

Encoding (`go_string`, `go_raw`, `marshal`) follows `json.Marshal` with its HTML-safe
default: see `go_string`.

Speed: honest input (Go-marshalled, exact keys) is decoded by a strict msgspec mirror
(`schemas.gojson_fast`) in a few µs; anything else takes the exact token-level decoder above.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Final

import msgspec

from schemas.gobase64 import GoBase64Error, go_base64_decode
from schemas.gojson_errors import (
    GoJSONError,
    GoMarshalError,
    GoSyntaxError,
    GoUnmarshalTypeError,
)
from schemas.gojson_fast import FastPath
from schemas.gojson_scan import JSONNumber, JSONObject, JSONValue, compact, parse
from schemas.gojson_shapes import (
    BYTES,
    STRING,
    STRING_MAP,
    UINT8,
    UINT32,
    Field,
    GoSlice,
    GoStruct,
    IntField,
    Kind,
    RawField,
    SliceField,
    StringField,
    StringSliceField,
    StructField,
    ValueField,
    byte_array,
    grow_capacity,
    slice_of,
    zero_value,
)
from schemas.gojson_strconv import go_bytes, go_quote

__all__ = [
    "BYTES",
    "STRING",
    "STRING_MAP",
    "UINT8",
    "UINT32",
    "GoJSONError",
    "GoMarshalError",
    "GoSlice",
    "GoStruct",
    "GoSyntaxError",
    "GoUnmarshalTypeError",
    "IntField",
    "Kind",
    "RawField",
    "SliceField",
    "StringField",
    "StringSliceField",
    "StructField",
    "ValueField",
    "byte_array",
    "go_quote",
    "go_raw",
    "go_string",
    "grow_capacity",
    "json_kind",
    "marshal",
    "plain",
    "slice_of",
    "unmarshal",
]

# --------------------------------------------------------------------------- decoding


def json_kind(value: JSONValue) -> str:
    """How Go names a JSON value in a type error (the relay has no numeric fields)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, JSONNumber):
        return "number"
    if isinstance(value, JSONObject):
        return "object"
    return "array"


class _Decoder:
    """One `json.Unmarshal` call over an already validated parse tree."""

    __slots__ = ("data", "error", "path", "struct")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.error: GoJSONError | None = None
        self.struct: GoStruct | None = None  # Go's errorContext.Struct
        self.path: list[str] = []  # Go's errorContext.FieldStack

    def mismatch(self, value: JSONValue, go_type: str, text: str = "") -> None:
        """Save Go's type error (the first error wins); `text` replaces the value's kind."""
        if self.error is None:
            self.error = GoUnmarshalTypeError(
                text or json_kind(value),
                go_type,
                struct=self.struct.name if self.struct is not None else "",
                field=".".join(self.path),
            )

    def into_struct(self, spec: GoStruct, target: dict[str, Any], value: JSONValue) -> None:
        if value is None:
            return
        if not isinstance(value, JSONObject):
            self.mismatch(value, spec.type_name)
            return
        outer_struct, depth = self.struct, len(self.path)
        for key, item, start, end in value.members:
            f = spec.lookup(key)
            if f is None:
                continue
            self.path.append(f.name)
            self.struct = spec
            self.into_field(f, target, item, start, end)
            del self.path[depth:]
            self.struct = outer_struct

    def into_field(
        self, f: Field, target: dict[str, Any], value: JSONValue, start: int, end: int
    ) -> None:
        if isinstance(f, StringField):
            if isinstance(value, str):
                target[f.name] = value
            elif value is not None:
                self.mismatch(value, "string")
        elif isinstance(f, RawField):
            target[f.name] = None if value is None else self.data[start:end]
        elif isinstance(f, ValueField):
            target[f.name] = self.value(f.kind, target[f.name], value)
        elif isinstance(f, StructField):
            target[f.name] = self.struct_value(f, target[f.name], value)
        elif not isinstance(f, SliceField):  # pragma: no cover - shapes are ours
            raise TypeError(f"decoding into {type(f).__name__} is not supported")
        elif value is None:
            target[f.name] = None
        elif isinstance(value, list):
            target[f.name] = self.into_slice(f.elem, target[f.name], value)
        else:
            self.mismatch(value, "[]" + f.elem.type_name)

    def into_slice(
        self, elem: GoStruct, current: GoSlice | None, values: list[JSONValue]
    ) -> GoSlice:
        if not values:
            return GoSlice([], 0)  # Go replaces the slice with a new empty one
        backing = current.backing if current is not None else []
        for i, value in enumerate(values):
            if i >= len(backing):
                # Only a full slice grows; elements past the length but within the capacity
                # are reused as they are (stale values from an earlier, longer array).
                new_cap = grow_capacity(len(backing), elem.size, elem.has_pointers)
                backing = backing + [elem.zero() for _ in range(new_cap - len(backing))]
            self.into_struct(elem, backing[i], value)
        return GoSlice(backing, len(values))

    def struct_value(
        self, f: StructField, current: dict[str, Any] | None, value: JSONValue
    ) -> dict[str, Any] | None:
        if value is None:
            return None if f.pointer else current
        # Go allocates a nil pointer before it looks at the value (even a wrong-typed one).
        target = current if current is not None else f.elem.zero()
        if isinstance(value, JSONObject):
            self.into_struct(f.elem, target, value)
        else:
            self.mismatch(value, f.elem.type_name)
        return target

    def value(self, kind: Kind, current: Any, value: JSONValue) -> Any:
        """The new value of a scalar-kind target holding `current` after decoding `value`."""
        name = kind.name
        if value is None:
            # Go's literalStore sets only interfaces, pointers, maps and slices to nil.
            return None if name in ("bytes", "slice", "map") else current
        if name == "string" and isinstance(value, str):
            return value
        if name in ("uint8", "uint32") and isinstance(value, JSONNumber):
            return self.uint(kind, current, value)
        if name == "bytes" and isinstance(value, str):
            try:
                return go_base64_decode(value.encode())
            except GoBase64Error as exc:
                if self.error is None:
                    self.error = GoJSONError(exc.message)
                return current
        if name == "bytes" and isinstance(value, list):
            old = current or b""
            return bytes(
                self.value(UINT8, old[i] if i < len(old) else 0, item)
                for i, item in enumerate(value)
            )
        if name == "array" and isinstance(value, list):
            # Extra elements are skipped unchecked; missing ones are zeroed.
            out = [
                self.value(UINT8, current[i], item) for i, item in enumerate(value[: kind.length])
            ]
            return bytes(out + [0] * (kind.length - len(out)))
        if name == "slice" and isinstance(value, list):
            return self.scalar_slice(kind, current, value)
        if name == "map" and isinstance(value, JSONObject):
            merged: dict[str, str] = dict(current) if current is not None else {}
            for key, item, _, _ in value.members:
                merged[key] = self.value(STRING, "", item)  # each element starts from zero
            return merged
        self.mismatch(value, kind.go_type)
        return current

    def uint(self, kind: Kind, current: int, value: JSONNumber) -> int:
        # strconv.ParseUint(text, 10, 64) plus the overflow check of the target's width.
        text = value.text
        limit = 0xFF if kind is UINT8 else 0xFFFFFFFF
        if text.isascii() and text.isdigit() and int(text) <= limit:
            return int(text)
        self.mismatch(value, kind.go_type, "number " + text)
        return current

    def scalar_slice(self, kind: Kind, current: GoSlice | None, values: list[JSONValue]) -> GoSlice:
        if not values:
            return GoSlice([], 0)
        elem = kind.elem
        assert elem is not None
        backing: list[Any] = current.backing if current is not None else []
        for i, item in enumerate(values):
            if i >= len(backing):
                new_cap = grow_capacity(len(backing), elem.size, elem.has_pointers)
                backing = backing + [zero_value(elem) for _ in range(new_cap - len(backing))]
            backing[i] = self.value(elem, backing[i], item)
        return GoSlice(backing, len(values))


def plain(value: Any) -> Any:
    """A decoded scalar-kind value with its slices as tuples (None stays None)."""
    if isinstance(value, GoSlice):
        return tuple(plain(item) for item in value.items())
    return value


def unmarshal(data: bytes, spec: GoStruct, *, fast: bool = True) -> dict[str, Any]:
    """`json.Unmarshal(data, &v)` into a zero struct of shape `spec`.

    Returns the field values (strings, bytes or None for raw fields, `GoSlice` or None for
    slices) or raises Go's first error: `GoSyntaxError` or `GoUnmarshalTypeError`.
    `fast=False` skips the msgspec fast path (`schemas.gojson_fast`); tests compare the two.
    """
    if fast:
        path: FastPath | None = spec.fast_path
        if path is None:
            path = FastPath(spec)
            object.__setattr__(spec, "fast_path", path)
        fields = path.decode(data)
        if fields is not None:
            return fields
    tree = parse(data)
    target = spec.zero()
    decoder = _Decoder(data)
    decoder.into_struct(spec, target, tree)
    if decoder.error is not None:
        raise decoder.error
    return target


# --------------------------------------------------------------------------- encoding

_ENCODE = msgspec.json.Encoder().encode
# Go's json.Marshal escapes these where msgspec writes them raw. Valid JSON can only hold
# them inside strings, so replacing the bytes in finished output is exact.
_HTML_SAFE: Final = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def html_escape(encoded: bytes) -> bytes:
    """Apply Go's HTML-safe escaping to compact JSON text (strings are the only place it acts)."""
    # memchr-speed one-byte searches beat one regular expression by ~20x on long text.
    if (
        b"<" in encoded
        or b">" in encoded
        or b"&" in encoded
        or (b"\xe2" in encoded and b"\xe2\x80" in encoded)
    ):
        for raw, escaped in _HTML_SAFE:
            encoded = encoded.replace(raw, escaped)
    return encoded


def go_string(value: str) -> bytes:
    """A JSON string exactly as Go's `json.Marshal` writes it (Go 1.22+).

    `"` and `\\` get a backslash; `\\b \\f \\n \\r \\t` short escapes; other bytes below 0x20
    as `\\u00xx` (lowercase); `<`, `>`, `&`, U+2028 and U+2029 as `\\u003c`, `\\u003e`,
    `\\u0026`, `\\u2028`, `\\u2029`; DEL and all other non-ASCII raw UTF-8. Text that is not
    valid UTF-8 in Go (here: lone surrogates, including `surrogateescape` bytes) is written as
    `\\ufffd`, one per invalid byte.
    """
    try:
        encoded = _ENCODE(value)
    except UnicodeEncodeError:
        return _go_string_invalid(value)
    return html_escape(encoded)


def _go_string_invalid(value: str) -> bytes:
    # Go sees the bytes of the string; every byte that does not decode is one `\ufffd`.
    text = go_bytes(value).decode("utf-8", "surrogateescape")
    parts = re.split("([\udc80-\udcff])", text)
    out = bytearray(b'"')
    for index, part in enumerate(parts):
        if index % 2:
            out += b"\\ufffd"
        elif part:
            out += html_escape(_ENCODE(part))[1:-1]
    out += b'"'
    return bytes(out)


def go_raw(raw: bytes) -> bytes:
    """A `json.RawMessage` as `json.Marshal` writes it: validated, compacted, HTML-escaped."""
    try:
        compacted = compact(raw)
    except GoSyntaxError as exc:
        raise GoMarshalError(
            f"json: error calling MarshalJSON for type *json.RawMessage: {exc.message}"
        ) from exc
    return html_escape(compacted)


def marshal(spec: GoStruct, value: Any) -> bytes:
    """`json.Marshal` of a struct of shape `spec`, reading fields from `value`'s attributes.

    Keys in struct order; `omitempty` drops "", 0, nil/empty slices and nil pointers; a
    non-omitempty nil slice or pointer is `null`, an empty slice `[]`.
    """
    # Strings are encoded by msgspec without the HTML-safe escapes, which are then applied
    # once to the whole output: valid JSON holds <, >, & and U+2028/9 only inside strings, and
    # the pass is idempotent on parts (raw values, invalid text) that are already escaped.
    return html_escape(_struct(spec, value))


def _str(v: str) -> bytes:
    try:
        return _ENCODE(v)
    except UnicodeEncodeError:
        return _go_string_invalid(v)


def _struct(spec: GoStruct, value: Any) -> bytes:
    parts: list[bytes] = []
    for f in spec.fields:
        encoded = _field(f, getattr(value, f.attr))
        if encoded is not None:
            parts.append(f.key + encoded)
    return b"{" + b",".join(parts) + b"}"


def _field(f: Field, v: Any) -> bytes | None:
    if isinstance(f, StringField):
        return None if f.omitempty and v == "" else _str(v)
    if isinstance(f, IntField):
        return None if f.omitempty and v == 0 else str(int(v)).encode()
    if isinstance(f, ValueField):
        if f.omitempty and _empty(f.kind, v):
            return None
        return _value(f.kind, v)
    if v is None:
        return None if f.omitempty else b"null"
    if isinstance(f, RawField):
        return go_raw(v)
    if isinstance(f, StructField):
        return _struct(f.elem, v)
    if f.omitempty and not v:
        return None
    if isinstance(f, StringSliceField):
        return b"[" + b",".join(_str(x) for x in v) + b"]"
    return b"[" + b",".join(_struct(f.elem, x) for x in v) + b"]"


def _empty(kind: Kind, v: Any) -> bool:
    """Go's isEmptyValue: nil, zero, or length 0 (an array of non-zero length never is)."""
    if v is None:
        return True
    if kind.name in ("uint8", "uint32"):
        return bool(v == 0)
    return kind.name != "array" and len(v) == 0


def _value(kind: Kind, v: Any) -> bytes:
    name = kind.name
    if name == "string":
        return _str(v)
    if name in ("uint8", "uint32"):
        return str(int(v)).encode()
    if name == "array":
        return b"[" + b",".join(str(x).encode() for x in v) + b"]"
    if v is None:
        return b"null"
    if name == "bytes":
        return b'"' + base64.b64encode(v) + b'"'
    if name == "slice":
        assert kind.elem is not None
        return b"[" + b",".join(_value(kind.elem, x) for x in v) + b"]"
    # map[string]string: Go sorts the keys bytewise (strings.Compare).
    keys = sorted(v, key=go_bytes)
    return b"{" + b",".join(_str(k) + b":" + _str(v[k]) for k in keys) + b"}"
