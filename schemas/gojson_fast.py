"""A msgspec fast path for `gojson.unmarshal`, taken only where it provably agrees with Go.

The exact decoder walks tokens in Python (~2 µs per member); msgspec decodes the same honest
request in a few µs. Honest senders (Go's `json.Marshal`) emit exactly the struct's keys, once
each, without `\\u` escapes in keys, so the fast path covers them; everything else falls back:

- keys must match field names exactly (`forbid_unknown_fields`): no case folding, no unknown
  keys; `null` must be allowed by the field (slices, raw values) or msgspec refuses it;
- a repeated key whose field is a slice would decode differently (Go reuses elements), so the
  input must not contain a slice field's quoted name twice, nor any `\\u` escape (which could
  spell a key differently);
- msgspec refuses invalid UTF-8 and lone surrogate escapes, which Go would turn into U+FFFD;
- msgspec's JSON grammar is at least as strict as Go's (tests fuzz this claim against a model
  of Go's scanner), so whatever it accepts, Go accepts with the same values.

Any refusal, for whatever reason, just means "ask the exact decoder".

The current protocol's kinds (`ValueField`) follow the same idea: a value whose Go decoding could
differ from a fresh, last-key-wins decode is refused. Numbers are taken as raw text (msgspec
reads `-0` as 0 where Go's ParseUint fails) and must be plain digits in range; `null` where Go
would leave an earlier value (a number, an array element, a string-slice element, a whole
`[N]uint8`) is refused; `[]byte` must be a base64 string (Go's decoder checks it); a map merges
on a repeated key in Go, so any input holding a map field's key is refused (honest enclaves never
send one), and a pointer struct is allowed only at the top level, with its key at most once.
Shapes with a struct field inside a slice element (the result shapes) have no fast path.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from schemas.gobase64 import GoBase64Error, go_base64_decode
from schemas.gojson_shapes import (
    GoSlice,
    GoStruct,
    Kind,
    RawField,
    SliceField,
    StringField,
    StructField,
    ValueField,
    zero_value,
)

_DIGIT_ARRAY: Final = re.compile(rb"\[[0-9 \t\r\n,]*\]")


class _Refused(Exception):
    """The fast result could differ from Go's: ask the exact decoder."""


class FastPath:
    """A strict msgspec mirror of one `GoStruct` plus the guard that makes it safe."""

    def __init__(self, spec: GoStruct) -> None:
        self._spec = spec
        self._decoder = msgspec.json.Decoder(_mirror(spec)) if _mirrorable(spec) else None
        # Keys that must not repeat (slices of structs, pointer structs) or not appear (maps).
        self._slice_keys = tuple(b'"' + f.name.encode() + b'"' for f in _all_slices(spec)) + tuple(
            b'"' + f.name.encode() + b'"' for f in spec.fields if isinstance(f, StructField)
        )
        self._map_keys = tuple(b'"' + name.encode() + b'"' for name in _map_names(spec))

    def decode(self, data: bytes) -> dict[str, Any] | None:
        """The field values Go would produce, or None when the exact decoder must decide."""
        if self._decoder is None:
            return None
        # A one-byte search first: memchr is ~10x faster than a two-byte substring search.
        if (
            (b"\\" in data and b"\\u" in data)
            or any(data.count(key) > 1 for key in self._slice_keys)
            or any(key in data for key in self._map_keys)
        ):
            return None
        try:
            value = self._decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # RecursionError: msgspec stops at about 1,000 levels of nesting, Go at 10,000.
            return None
        try:
            return _fields(self._spec, value)
        except _Refused:
            return None


def _mirrorable(spec: GoStruct, top: bool = True) -> bool:
    return all(
        isinstance(f, StringField | RawField | ValueField)
        or (isinstance(f, SliceField) and _mirrorable(f.elem, top=False))
        or (isinstance(f, StructField) and top and f.pointer and _mirrorable(f.elem, top=False))
        for f in spec.fields
    )


def _map_names(spec: GoStruct) -> list[str]:
    found: list[str] = []
    for f in spec.fields:
        if isinstance(f, ValueField) and f.kind.name == "map":
            found.append(f.name)
        elif isinstance(f, SliceField | StructField):
            found.extend(_map_names(f.elem))
    return found


def _kind_type(kind: Kind) -> Any:
    """The msgspec type mirroring a kind (numbers as raw text; see the module docstring)."""
    if kind.name == "string":
        return str
    if kind.name in ("uint8", "uint32"):
        return msgspec.Raw
    if kind.name == "bytes":
        return str | None
    if kind.name == "array":
        return msgspec.Raw  # the whole array's text, parsed below in one pass
    if kind.name == "map":
        return dict[str, str] | None
    assert kind.elem is not None
    return list[_kind_type(kind.elem)] | None  # type: ignore[misc]


def _uint(kind: Kind, raw: bytes) -> int:
    limit = 0xFF if kind.name == "uint8" else 0xFFFFFFFF
    if not raw.isdigit() or int(raw) > limit:
        raise _Refused  # includes null, -0, fractions, exponents, other kinds
    return int(raw)


def _kind_value(kind: Kind, v: Any) -> Any:
    name = kind.name
    if name in ("uint8", "uint32"):
        return _uint(kind, bytes(v))
    if name == "bytes":
        if v is None:
            return None
        try:
            return go_base64_decode(v.encode())
        except GoBase64Error:
            raise _Refused from None
    if name == "array":
        raw = bytes(v)
        # Digits, commas and blanks only (msgspec checked the syntax): no null, sign, fraction.
        if _DIGIT_ARRAY.fullmatch(raw) is None:
            raise _Refused
        body = raw[1:-1]
        numbers = [int(x) for x in body.split(b",")[: kind.length]] if body.strip() else []
        if any(n > 0xFF for n in numbers):
            raise _Refused
        return bytes(numbers) + bytes(kind.length - len(numbers))
    if name == "slice":
        if v is None:
            return None
        assert kind.elem is not None
        return tuple(_kind_value(kind.elem, x) for x in v)
    return v  # string, map


def _all_slices(spec: GoStruct) -> list[SliceField]:
    found: list[SliceField] = []
    for f in spec.fields:
        if isinstance(f, SliceField):
            found.append(f)
            found.extend(_all_slices(f.elem))
    return found


def _mirror(spec: GoStruct) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any]] = []
    for f in spec.fields:
        if isinstance(f, StringField):
            fields.append((f.name, str, ""))
        elif isinstance(f, RawField):
            fields.append((f.name, msgspec.Raw, msgspec.Raw()))
        elif isinstance(f, ValueField):
            # UNSET tells an absent key (Go's zero value) from one present as null.
            fields.append((f.name, _kind_type(f.kind) | msgspec.UnsetType, msgspec.UNSET))
        elif isinstance(f, StructField):
            fields.append((f.name, _mirror(f.elem) | None, None))
        elif isinstance(f, SliceField):
            elem: Any = _mirror(f.elem)
            fields.append((f.name, list[elem] | None, None))
        else:  # pragma: no cover - only decodable shapes get a fast path
            raise TypeError(f"no fast path for {type(f).__name__}")
    return msgspec.defstruct(
        "Fast" + "".join(c for c in spec.name if c.isalnum()),
        fields,
        forbid_unknown_fields=True,
    )


def _fields(spec: GoStruct, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in spec.fields:
        v = getattr(value, f.name)
        if isinstance(f, RawField):
            # msgspec gives the value's exact bytes (empty when absent); Go's *RawMessage is
            # nil when absent or `null`.
            raw = bytes(v)
            out[f.name] = None if raw in (b"", b"null") else raw
        elif isinstance(f, SliceField) and v is not None:
            out[f.name] = GoSlice([_fields(f.elem, item) for item in v], len(v))
        elif isinstance(f, ValueField):
            out[f.name] = zero_value(f.kind) if v is msgspec.UNSET else _kind_value(f.kind, v)
        elif isinstance(f, StructField) and v is not None:
            out[f.name] = _fields(f.elem, v)
        else:
            out[f.name] = v
    return out
