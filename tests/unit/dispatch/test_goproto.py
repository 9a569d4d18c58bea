"""protobuf-go's verdict and text for CapabilityRequest payloads (workers/dispatch/goproto.py).

Expected texts are protobuf-go's (internal/impl/decode.go, codec_field.go, internal/errors);
the byte strings are hand-built wire format, each named by the rule it breaks.
"""

from __future__ import annotations

import random

import pytest
from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.message import DecodeError

from schemas.proto.gen import sdk_pb2
from workers.dispatch.goproto import ERR_DECODE, ERR_UTF8, GoProtoError, check_capability_request


def _verdict(data: bytes) -> str | None:
    try:
        check_capability_request(data)
    except GoProtoError as exc:
        return str(exc)
    return None


def _group_nest(depth: int) -> bytes:
    return b"\x4b" * depth + b"\x4c" * depth  # field 9: start group ... end group


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", None, id="empty message"),
        pytest.param(b"\x0a\x03abc\x1a\x04echo\x20\x07", None, id="id, method, callback_id"),
        pytest.param(b"\x18\x05", None, id="method sent as a varint is an unknown field"),
        pytest.param(b"\x4a\x02\xff\xfe", None, id="unknown bytes field is not UTF-8 checked"),
        pytest.param(b"\x12\x04\x12\x02\xff\xfe", None, id="Any.value holds any bytes"),
        pytest.param(b"\x4d\x01\x02\x03\x04\x49" + bytes(8), None, id="unknown fixed32, fixed64"),
        pytest.param(_group_nest(10_001), None, id="10,001 nested unknown groups"),
        pytest.param(b"\x80", ERR_DECODE, id="truncated tag"),
        pytest.param(b"\x00", ERR_DECODE, id="field number 0"),
        pytest.param(b"\xf8\xff\xff\xff\x0f\x00", None, id="field number 2^29-1, the largest"),
        pytest.param(b"\x80\x80\x80\x80\x10\x00", ERR_DECODE, id="field number 2^29"),
        pytest.param(b"\x0e", ERR_DECODE, id="wire type 6"),
        pytest.param(b"\x0f", ERR_DECODE, id="wire type 7"),
        pytest.param(b"\x0c", ERR_DECODE, id="end group outside a group"),
        pytest.param(b"\x0a\x05ab", ERR_DECODE, id="length past the end"),
        pytest.param(b"\x20" + b"\xff" * 9 + b"\x02", ERR_DECODE, id="varint overflowing 64 bits"),
        pytest.param(b"\x20" + b"\xff" * 10 + b"\x00", ERR_DECODE, id="varint of 11 bytes"),
        pytest.param(b"\x4b\x54", ERR_DECODE, id="group closed by another number"),
        pytest.param(b"\x4b", ERR_DECODE, id="group never closed"),
        pytest.param(b"\x4d\x01\x02", ERR_DECODE, id="truncated fixed32"),
        pytest.param(_group_nest(10_002), ERR_DECODE, id="10,002 nested unknown groups"),
        pytest.param(b"\x1a\x01\xff", ERR_UTF8, id="method not UTF-8"),
        pytest.param(b"\x0a\x03\xed\xa0\x80", ERR_UTF8, id="id holding a UTF-16 surrogate"),
        pytest.param(b"\x12\x03\x0a\x01\xc0", ERR_UTF8, id="Any.type_url not UTF-8"),
        pytest.param(b"\x12\x02\x0a\x05", ERR_DECODE, id="truncated inside the Any"),
        pytest.param(b"\x1a\x01\xff\x0e", ERR_UTF8, id="the first error wins"),
    ],
)
def test_go_unmarshal_verdicts_and_texts(data: bytes, expected: str | None) -> None:
    """Each wire-format rule protobuf-go enforces, with the exact text it reports."""
    assert _verdict(data) == expected


def test_the_texts_carry_gos_prefix_with_a_regular_space() -> None:
    """`proto: ` with U+0020 for parse errors; the UTF-8 error has no prefix at all."""
    assert ERR_DECODE == "proto: cannot parse invalid wire-format data"
    assert ERR_UTF8 == "string field contains invalid UTF-8"


def _random_request(rng: random.Random) -> bytes:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="".join(rng.choice("aé€😀") for _ in range(5))))
    request = sdk_pb2.CapabilityRequest(
        id=str(rng.random()), method="m" * rng.randrange(40), callback_id=rng.randrange(-9, 9)
    )
    if rng.random() < 0.7:
        request.payload.CopyFrom(inner)
    return request.SerializeToString()


def test_every_message_python_protobuf_writes_is_accepted() -> None:
    """Well-formed requests (concatenated too: Go merges them) pass the Go check."""
    rng = random.Random(7)
    for _ in range(300):
        data = _random_request(rng)
        assert _verdict(data) is None
        assert _verdict(data + _random_request(rng)) is None


def test_whenever_go_accepts_a_mutated_payload_python_protobuf_parses_it_too() -> None:
    """Random byte flips and cuts: a Go 'yes' is never a python-protobuf 'no' (so we never answer
    a request that Go would answer with its generic text for the wrong reason)."""
    rng = random.Random(11)
    accepted = rejected = 0
    for _ in range(3000):
        data = bytearray(_random_request(rng))
        for _ in range(rng.randrange(1, 4)):
            if data and rng.random() < 0.8:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                del data[rng.randrange(len(data) + 1) :]
        if _verdict(bytes(data)) is None:
            accepted += 1
            try:
                sdk_pb2.CapabilityRequest.FromString(bytes(data))
            except DecodeError:  # pragma: no cover - the failure this test exists for
                pytest.fail(f"Go accepts, python-protobuf refuses: {bytes(data).hex()}")
        else:
            rejected += 1
    assert accepted > 100
    assert rejected > 100
