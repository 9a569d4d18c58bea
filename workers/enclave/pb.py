"""The two protobuf messages an enclave touches, by hand (PROTOCOL 4.2), so the library needs
no protobuf runtime: `sdk.v1alpha.CapabilityRequest` out, `sdk.v1alpha.CapabilityResponse` in.

CapabilityRequest: 1 id (string), 2 payload (google.protobuf.Any), 3 method (string),
4 callback_id (int32). CapabilityResponse: oneof 1 payload (Any), 2 error (string).
Any: 1 type_url (string), 2 value (bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_PREFIX = "type.googleapis.com/"


class ProtobufError(ValueError):
    """Bytes that are not the expected message."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def len_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def capability_request(
    method: str, *, type_url: str = "", value: bytes = b"", callback_id: int = 0
) -> bytes:
    """A serialised CapabilityRequest, fields in number order (as deterministic marshalling
    writes them); the Any is present when `type_url` or `value` is set."""
    out = bytearray()
    if type_url or value:
        any_body = (len_field(1, type_url.encode()) if type_url else b"") + (
            len_field(2, value) if value else b""
        )
        out += len_field(2, any_body)
    if method:
        out += len_field(3, method.encode())
    if callback_id:
        out += _varint(4 << 3) + _varint(callback_id & 0xFFFFFFFFFFFFFFFF)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(number, wire type, value) for each field; unknown fields of any wire type skipped."""
    out: list[tuple[int, int, bytes | int]] = []
    at = 0
    while at < len(data):
        tag, at = _read_varint(data, at)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == 0:
            value, at = _read_varint(data, at)
            out.append((number, wire, value))
        elif wire == 2:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise ProtobufError("truncated field")
            out.append((number, wire, data[at : at + size]))
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            if at > len(data):
                raise ProtobufError("truncated field")
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


@dataclass(frozen=True, slots=True)
class CapabilityResponse:
    """The capability's answer: an Any (`type_url`, `value`), or an `error`; all empty when the
    capability answered nothing."""

    type_url: str = ""
    value: bytes = b""
    error: str = ""
    has_payload: bool = False


def capability_response(data: bytes) -> CapabilityResponse:
    type_url, value, error, has_payload = "", b"", "", False
    for number, wire, field in _fields(data):
        if wire != 2 or not isinstance(field, bytes):
            continue
        if number == 1:
            has_payload, type_url, value, error = True, "", b"", ""
            for inner_number, inner_wire, inner in _fields(field):
                if inner_wire == 2 and isinstance(inner, bytes):
                    if inner_number == 1:
                        type_url = inner.decode("utf-8", "replace")
                    elif inner_number == 2:
                        value = inner
        elif number == 2:
            has_payload, type_url, value = False, "", b""
            error = field.decode("utf-8", "replace")
    return CapabilityResponse(type_url=type_url, value=value, error=error, has_payload=has_payload)
