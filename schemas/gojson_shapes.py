"""Go struct shapes as `encoding/json` sees them: field kinds, struct types, slices.

Kept apart from the codec so the decoder, the encoder and the msgspec fast path share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True)
class _Named:
    """A field's JSON key, and its `"key":` prefix precomputed for the encoder.

    `attr` is the attribute the encoder reads from a value (default: the JSON key), for Go
    tags that are no Python name style (`requestID`, `CiphertextNames`).
    """

    name: str
    key: bytes = field(init=False, repr=False, compare=False)
    attr: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", b'"' + self.name.encode() + b'":')
        if not self.attr:
            object.__setattr__(self, "attr", self.name)


@dataclass(frozen=True)
class StringField(_Named):
    """A Go `string` field with its JSON key."""

    omitempty: bool = False


@dataclass(frozen=True)
class RawField(_Named):
    """A Go `*json.RawMessage` field: the value's exact bytes, or None for nil (`null`)."""

    omitempty: bool = False


@dataclass(frozen=True)
class SliceField(_Named):
    """A Go `[]Elem` field of structs: a tuple of Structs, or None for a nil slice."""

    elem: GoStruct
    omitempty: bool = False


@dataclass(frozen=True)
class StringSliceField(_Named):
    """A Go `[]string` field (encoding only): a tuple of str, or None for a nil slice."""

    omitempty: bool = False


@dataclass(frozen=True)
class IntField(_Named):
    """A Go `int64` field (encoding only)."""

    omitempty: bool = False


@dataclass(frozen=True)
class StructField(_Named):
    """A Go struct-valued field; `pointer` makes None a nil pointer.

    Decoded values are dicts of the struct's fields (like slice elements); a JSON `null` sets
    a pointer to nil and leaves a plain struct as it was, a repeated key decodes into the
    struct already there (Go merges).
    """

    elem: GoStruct
    omitempty: bool = False
    pointer: bool = False


# --------------------------------------------------------------------------- scalar kinds
#
# The value kinds below the struct level that the current protocol's structs need (PROTOCOL
# 10.5, 10.7, 10.8): Go's `string`, `uint8`, `uint32`, `[]byte` (base64 in JSON), `[N]uint8`
# (a JSON array of numbers), slices of these and `map[string]string`. `go_type` is the name Go
# prints in an `UnmarshalTypeError`; `size` and `has_pointers` feed the slice growth model.


@dataclass(frozen=True)
class Kind:
    """A non-struct Go type: `name` is one of string, uint8, uint32, bytes, array, slice, map."""

    name: str
    go_type: str
    size: int
    has_pointers: bool
    elem: Kind | None = None
    length: int = 0


STRING: Final = Kind("string", "string", 16, True)
UINT8: Final = Kind("uint8", "uint8", 1, False)
UINT32: Final = Kind("uint32", "uint32", 4, False)
BYTES: Final = Kind("bytes", "[]uint8", 24, True, elem=UINT8)
STRING_MAP: Final = Kind("map", "map[string]string", 8, True, elem=STRING)


def slice_of(elem: Kind) -> Kind:
    """Go's `[]elem`."""
    return Kind("slice", "[]" + elem.go_type, 24, True, elem=elem)


def byte_array(length: int) -> Kind:
    """Go's `[length]uint8` (not base64 in JSON: an array of numbers)."""
    return Kind("array", f"[{length}]uint8", length, False, elem=UINT8, length=length)


@dataclass(frozen=True)
class ValueField(_Named):
    """A field of a scalar kind (see `Kind`), decoded and encoded as Go does.

    Python values: str; int; bytes, or None for a nil `[]byte`; bytes of the array's length;
    a tuple, or None for a nil slice; a dict, or None for a nil map.
    """

    kind: Kind
    omitempty: bool = False


Field = StringField | RawField | SliceField | StringSliceField | IntField | StructField | ValueField


def zero_value(kind: Kind) -> Any:
    """The Go zero value of a kind, as the codec represents it."""
    if kind.name == "string":
        return ""
    if kind.name in ("uint8", "uint32"):
        return 0
    if kind.name == "array":
        return bytes(kind.length)
    return None


def go_fold(key: str) -> str:
    """A key folded so that, against an ASCII name, equality is Go's case-insensitive match
    (encoding/json's field lookup, strings.EqualFold): ASCII case, U+212A and U+017F."""
    return key.translate(_FOLD_TABLE)


# ASCII lower case to upper case, plus the two non-ASCII runes whose fold orbit holds an ASCII
# letter (U+212A KELVIN SIGN with k/K, U+017F LONG S with s/S); Go folds to the smallest rune.
_FOLD_TABLE: Final = {**{c: c - 32 for c in range(0x61, 0x7B)}, 0x212A: 0x4B, 0x17F: 0x53}


@dataclass(frozen=True)
class GoStruct:
    """A Go struct type as `encoding/json` sees it: name, package-qualified name, fields.

    `size` is `unsafe.Sizeof` on 64-bit Go; it only matters for slices of this struct (their
    capacity growth). `has_pointers` likewise (strings hold pointers).
    """

    name: str
    type_name: str
    fields: tuple[Field, ...]
    size: int = 0
    has_pointers: bool = True
    _exact: dict[str, Field] = field(init=False, repr=False, compare=False)
    _folded: dict[str, Field] = field(init=False, repr=False, compare=False)
    fast_path: Any = field(default=None, init=False, repr=False, compare=False)
    """The decoder's msgspec fast path, built on first use (see `schemas.gojson_fast`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_exact", {f.name: f for f in self.fields})
        object.__setattr__(self, "_folded", {go_fold(f.name): f for f in self.fields})

    def lookup(self, key: str) -> Field | None:
        """The field a JSON key lands in: exact match first, then Go's case folding."""
        found = self._exact.get(key)
        if found is None:
            found = self._folded.get(go_fold(key))
        return found

    def zero(self) -> dict[str, Any]:
        """The Go zero value of a decodable struct: "" for strings, a dict for a plain struct,
        the kind's zero for a scalar kind, None (nil) otherwise."""
        out: dict[str, Any] = {}
        for f in self.fields:
            if isinstance(f, StringField):
                out[f.name] = ""
            elif isinstance(f, ValueField):
                out[f.name] = zero_value(f.kind)
            elif isinstance(f, StructField) and not f.pointer:
                out[f.name] = f.elem.zero()
            else:
                out[f.name] = None
        return out


# --------------------------------------------------------------------------- slices


class GoSlice:
    """A Go slice of structs: a backing array (its length is the capacity) and a length."""

    __slots__ = ("backing", "length")

    def __init__(self, backing: list[dict[str, Any]], length: int) -> None:
        self.backing = backing
        self.length = length

    def items(self) -> list[dict[str, Any]]:
        return self.backing[: self.length]


# runtime/sizeclasses.go: the byte sizes of the small-object classes.
_SIZE_CLASSES: Final = (
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
    320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
    1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
    9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
    27264, 28672, 32768,
)  # fmt: skip
_MAX_SMALL_SIZE: Final = 32768
_MALLOC_HEADER_SIZE: Final = 8
_MIN_SIZE_FOR_MALLOC_HEADER: Final = 512  # pointer size * bits per pointer word
_PAGE_SIZE: Final = 8192


def _roundupsize(size: int, noscan: bool) -> int:
    """runtime.roundupsize (Go 1.22+ with allocation headers, 64-bit)."""
    if size <= _MAX_SMALL_SIZE - _MALLOC_HEADER_SIZE:
        req = size
        if not noscan and req > _MIN_SIZE_FOR_MALLOC_HEADER:
            req += _MALLOC_HEADER_SIZE
        rounded = next(c for c in _SIZE_CLASSES if c >= req)
        return rounded - (req - size)
    return (size + _PAGE_SIZE - 1) // _PAGE_SIZE * _PAGE_SIZE


def grow_capacity(old_cap: int, elem_size: int, has_pointers: bool) -> int:
    """The capacity after `reflect.Value.Grow(1)` on a full slice of capacity `old_cap`."""
    new_len = old_cap + 1
    if new_len > 2 * old_cap:
        new_cap = new_len
    elif old_cap < 256:
        new_cap = 2 * old_cap
    else:
        new_cap = old_cap
        while new_cap < new_len:
            new_cap += (new_cap + 3 * 256) >> 2
    if elem_size == 0:
        return new_cap
    return _roundupsize(new_cap * elem_size, not has_pointers) // elem_size
