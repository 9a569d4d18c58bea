"""The echo capability answers as docs/reference-vault.md says, through the relay's translation."""

from __future__ import annotations

import base64

from google.protobuf import any_pb2, wrappers_pb2

from schemas import capability
from schemas.proto.gen import sdk_pb2
from workers.dispatch.capability import response_payload
from workers.reference import echo


def call(method: str, payload: bytes) -> capability.CapabilityCall:
    return capability.CapabilityCall(
        capability_id=echo.ECHO_ID,
        method=method,
        payload=payload,
        metadata=capability.CallMetadata(),
    )


def test_echo_returns_the_request_any_unchanged_inside_a_capability_response() -> None:
    """Method echo: the result payload decodes to a CapabilityResponse holding the same Any."""
    sent = any_pb2.Any()
    sent.Pack(wrappers_pb2.StringValue(value="hi"))
    outcome = echo.answer(call("echo", sent.SerializeToString(deterministic=True)))
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(response_payload(outcome)))
    assert response.payload == sent
    echoed = wrappers_pb2.StringValue()
    assert response.payload.Unpack(echoed)
    assert echoed.value == "hi"


def test_fail_answers_the_documented_capability_error() -> None:
    """Method fail: the capability's own error `execution failed`, no payload."""
    assert echo.answer(call("fail", b"\x01")) == capability.CapabilityOutcome(
        error="execution failed"
    )


def test_an_echo_without_payload_is_an_empty_answer() -> None:
    """No input payload gives an empty CapabilityResponse, whose base64 is "" (omitted, `{}`)."""
    assert response_payload(echo.answer(call("echo", b""))) == ""
