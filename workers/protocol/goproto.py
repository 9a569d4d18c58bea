"""protobuf-go's verdict and error text for `proto.Unmarshal` of the enclave's protobufs.

The -32602 wire message `failed to unmarshal capability request: <err>` (PROTOCOL 2.5, capability
row 6) carries Go's error text, so honest Python and Go nodes must agree on it byte for byte;
python-protobuf's own texts ("Error parsing message with type ...") never match, and its
accept/reject edges differ from Go's (it lets a 10-byte varint whose last byte is above 1 pass).
This walks the wire format as protobuf-go's fast-path decoder does, for the messages the relay
decodes from enclaves: `sdk.v1alpha.CapabilityRequest` and the `google.protobuf.Any` inside it,
and the Workflow DON's `WorkflowExecution` (PROTOCOL 10.8), whose string fields it also reads.
The three message fields of WorkflowExecution (8-10) are checked as wire format only: their
schemas are not pinned, so a string inside them that is not UTF-8 passes here and fails in Go.

Go's texts (google.golang.org/protobuf internal/impl and internal/errors):
- `proto: cannot parse invalid wire-format data` for every malformed tag, varint, length,
  group or field number;
- `string field contains invalid UTF-8` (no prefix) for a proto3 string that is not UTF-8;
- `proto: exceeded maximum recursion depth` past 10,000 nested messages or groups.

Why only "most" Go builds: protobuf-go picks its prefix per binary, deliberately, from a hash of
the executable: `proto: ` with a regular space or with a no-break space (U+00A0). We use the
regular space; a Go node built the other way disagrees with every other build on this one error
message too, so no implementation can match all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "proto: "
ERR_DECODE = PREFIX + "cannot parse invalid wire-format data"
ERR_UTF8 = "string field contains invalid UTF-8"
ERR_DEPTH = PREFIX + "exceeded maximum recursion depth"

RECURSION_LIMIT = 10_000  # protowire.DefaultRecursionLimit
_MAX_FIELD_NUMBER = (1 << 29) - 1
_VARINT, _FIXED64, _BYTES, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


class GoProtoError(Exception):
    """The bytes do not unmarshal in Go; `str(exc)` is Go's error text."""


@dataclass(frozen=True)
class _Field:
    wire: int  # the wire type the field's kind is decoded from
    kind: str  # "string", "bytes", "varint" or "message"
    message: _Message | None = None


@dataclass(frozen=True)
class _Message:
    fields: dict[int, _Field]


ANY = _Message({1: _Field(_BYTES, "string"), 2: _Field(_BYTES, "bytes")})
CAPABILITY_REQUEST = _Message(
    {
        1: _Field(_BYTES, "string"),  # id
        2: _Field(_BYTES, "message", ANY),  # payload
        3: _Field(_BYTES, "string"),  # method
        4: _Field(_VARINT, "varint"),  # callback_id
    }
)

# capabilities.v2.actions.confidentialworkflow.WorkflowExecution (PROTOCOL 10.8).
_OPAQUE = _Message({})
WORKFLOW_EXECUTION = _Message(
    {
        1: _Field(_BYTES, "string"),  # workflow_id
        2: _Field(_BYTES, "string"),  # binary_url
        3: _Field(_BYTES, "bytes"),  # binary_hash
        4: _Field(_BYTES, "bytes"),  # execute_request
        5: _Field(_BYTES, "string"),  # owner
        6: _Field(_BYTES, "string"),  # execution_id
        7: _Field(_BYTES, "string"),  # org_id
        8: _Field(_BYTES, "message", _OPAQUE),  # requirements
        9: _Field(_BYTES, "message", _OPAQUE),  # sdk_execute_request
        10: _Field(_BYTES, "message", _OPAQUE),  # restrictions
    }
)


def _varint(b: bytes, i: int) -> tuple[int, int]:
    """protowire.ConsumeVarint: at most 10 bytes, and the 10th may only hold the top bit."""
    value = 0
    for n in range(10):
        if i + n >= len(b):
            raise GoProtoError(ERR_DECODE)  # truncated
        byte = b[i + n]
        if n == 9 and byte > 1:
            raise GoProtoError(ERR_DECODE)  # overflows 64 bits
        value |= (byte & 0x7F) << (7 * n)
        if byte < 0x80:
            return value, i + n + 1
    raise GoProtoError(ERR_DECODE)  # more than 10 bytes


def _length_delimited(b: bytes, i: int) -> tuple[int, int]:
    length, i = _varint(b, i)
    if length > len(b) - i:
        raise GoProtoError(ERR_DECODE)
    return i, i + length


def _tag(b: bytes, i: int) -> tuple[int, int, int]:
    tag, i = _varint(b, i)
    number = tag >> 3
    if not 1 <= number <= _MAX_FIELD_NUMBER:
        raise GoProtoError(ERR_DECODE)
    return number, tag & 7, i


def _skip_scalar(b: bytes, i: int, wire: int) -> int:
    if wire == _VARINT:
        return _varint(b, i)[1]
    if wire == _FIXED64:
        if len(b) - i < 8:
            raise GoProtoError(ERR_DECODE)
        return i + 8
    if wire == _FIXED32:
        if len(b) - i < 4:
            raise GoProtoError(ERR_DECODE)
        return i + 4
    if wire == _BYTES:
        return _length_delimited(b, i)[1]
    raise GoProtoError(ERR_DECODE)  # an end group without a start, or wire types 6 and 7


def _skip(b: bytes, i: int, number: int, wire: int) -> int:
    """protowire.ConsumeFieldValue for a field the message does not know (or of another type).

    Groups nest up to the recursion limit, which Go reports here as a parse error; walked with a
    stack, not recursion, so a hostile payload cannot exhaust Python's stack.
    """
    if wire != _START_GROUP:
        return _skip_scalar(b, i, wire)
    open_groups = [number]
    while open_groups:
        inner, inner_wire, i = _tag(b, i)
        if inner_wire == _END_GROUP:
            if inner != open_groups.pop():
                raise GoProtoError(ERR_DECODE)
        elif inner_wire == _START_GROUP:
            if len(open_groups) > RECURSION_LIMIT:
                raise GoProtoError(ERR_DECODE)
            open_groups.append(inner)
        else:
            i = _skip_scalar(b, i, inner_wire)
    return i


def _walk(b: bytes, message: _Message, depth: int, strings: dict[int, str] | None = None) -> None:
    """Check `b` as Go would; when `strings` is given, fill it with the top level's string
    fields, the last occurrence winning as in proto3."""
    if depth < 0:
        raise GoProtoError(ERR_DEPTH)
    i = 0
    while i < len(b):
        number, wire, i = _tag(b, i)
        if wire == _END_GROUP:
            raise GoProtoError(ERR_DECODE)  # not inside a group
        field = message.fields.get(number)
        if field is None or field.wire != wire:
            # Unknown, or known with another wire type: Go keeps it as an unknown field.
            i = _skip(b, i, number, wire)
            continue
        if field.kind == "varint":
            i = _varint(b, i)[1]
            continue
        start, i = _length_delimited(b, i)
        if field.kind == "string":
            try:
                text = b[start:i].decode("utf-8")
            except UnicodeDecodeError:
                raise GoProtoError(ERR_UTF8) from None
            if strings is not None:
                strings[number] = text
        elif field.message is not None:
            _walk(b[start:i], field.message, depth - 1)


def check_capability_request(data: bytes) -> None:
    """Raise GoProtoError with Go's text unless Go unmarshals `data` as a CapabilityRequest."""
    _walk(data, CAPABILITY_REQUEST, RECURSION_LIMIT - 1)


def workflow_execution_strings(data: bytes) -> dict[int, str]:
    """The string fields (by number) of a WorkflowExecution, or GoProtoError with Go's text.

    A field that is absent is absent from the result (proto3: it reads as "").
    """
    strings: dict[int, str] = {}
    _walk(data, WORKFLOW_EXECUTION, RECURSION_LIMIT - 1, strings)
    return strings
