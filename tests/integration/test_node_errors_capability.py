"""PROTOCOL 2.5 `confidential.capability.execute` rows and the 6.1 capability behaviours, on a real node.

The well-behaved DON is the reference `echo@1.0.0`; `fake-cap@1.0.0` is a fake DON on its real
`cap.v1` subject that records what it received and answers what each test sets. Every call that
reaches execution has its own reference id: the dispatch actor deduplicates by logical identity.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from schemas import capability, rpc
from schemas.proto.gen import sdk_pb2, values_pb2
from tests.integration.node_errors_support import (
    EXECUTION_ID,
    FAKE_CAP,
    Relay,
    ask,
    assert_internal,
    attested,
    capability_params,
    envelope,
    error_bytes,
    logged_errors,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

METHOD = rpc.MethodCapabilityExec
NOT_FOUND = "capability not found: "  # wrapping the registry's own error, as upstream's %w does


def sdk_payload(inner: Any = None, method: str = "run") -> str:
    """base64 of an sdk CapabilityRequest (its id and callback_id are set, to be ignored)."""
    wrapped = any_pb2.Any()
    wrapped.Pack(inner if inner is not None else wrappers_pb2.StringValue(value="hello"))
    request = sdk_pb2.CapabilityRequest(id="ignored", method=method, payload=wrapped, callback_id=3)
    return base64.b64encode(request.SerializeToString()).decode()


def answering(**fields: Any) -> Any:
    outcome = capability.CapabilityOutcome(**fields)
    return lambda call: outcome


def result_of(raw: bytes, request_id: str) -> dict[str, Any]:
    response: dict[str, Any] = json.loads(raw)
    assert (response["jsonrpc"], response["id"], response["method"]) == ("2.0", request_id, METHOD)
    assert "error" not in response, response
    result: dict[str, Any] = response["result"]
    return result


# --- 6.1: what a capability receives and what comes back -------------------------------------


async def test_a_capability_success_carries_upstreams_metadata_and_returns_its_any(
    relay: Relay,
) -> None:
    """6.1 N0 1 + 9ed4ce31: WorkflowID, unvalidated owner "0xowner", execution id, ReferenceID 17."""
    answer = any_pb2.Any(type_url="type.googleapis.com/test.Result", value=b"result-proto-bytes")
    relay.cap.answer = answering(payload=answer.SerializeToString())
    params = capability_params(payload=sdk_payload())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c1"))
    result = result_of(raw, "req-c1")
    assert list(result) == ["payload"]
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(result["payload"]))
    assert response.WhichOneof("response") == "payload"
    assert response.payload.value == b"result-proto-bytes"
    (call,) = relay.cap.calls
    assert call.metadata == capability.CallMetadata(
        workflow_id="wf-1",
        workflow_owner="0xowner",
        workflow_execution_id=EXECUTION_ID,
        reference_id="17",
    )
    sent = any_pb2.Any()
    sent.Pack(wrappers_pb2.StringValue(value="hello"))
    assert (call.capability_id, call.method) == (FAKE_CAP, "run")
    assert call.payload == sent.SerializeToString(deterministic=True)
    assert (call.inputs, call.config) == (b"", b"")


async def test_without_a_reference_id_the_json_rpc_id_is_the_reference(relay: Relay) -> None:
    """4.2 step 3: ReferenceID is `params.reference_id`, or the JSON-RPC id when it is empty."""
    relay.cap.answer = answering()
    params = capability_params(reference_id="", payload=sdk_payload())
    await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c2"))
    (call,) = relay.cap.calls
    assert call.metadata.reference_id == "req-c2"


async def test_a_values_map_payload_is_also_given_as_inputs(relay: Relay) -> None:
    """6.1 N0 2: an Any of values.v1.Value map {"echo":"hello"} is back-filled into Inputs."""
    relay.cap.answer = answering()
    value = values_pb2.Value(
        map_value=values_pb2.Map(fields={"echo": values_pb2.Value(string_value="hello")})
    )
    params = capability_params(reference_id="c3", payload=sdk_payload(value))
    await ask(relay.nc, attested(relay.chain, METHOD, params))
    (call,) = relay.cap.calls
    unpacked = values_pb2.Value()
    assert any_pb2.Any.FromString(call.payload).Unpack(unpacked)
    assert values_pb2.Map.FromString(call.inputs).fields["echo"].string_value == "hello"


async def test_a_capability_execution_error_is_a_successful_result_with_error(
    relay: Relay,
) -> None:
    """6.1 N0 5 / row 7 with the reference echo: `{"error":"execution failed"}`, no payload."""
    params = capability_params(
        capability_id="echo@1.0.0", reference_id="c4", payload=sdk_payload(method="fail")
    )
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c4"))
    assert raw == (
        b'{"jsonrpc":"2.0","id":"req-c4","method":"confidential.capability.execute",'
        b'"result":{"error":"execution failed"}}'
    )


async def test_a_capability_error_text_reaches_the_enclave_verbatim_in_gos_json(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 7 is not sanitised: the fake DON's text is the result, escaped as Go's encoder does."""
    relay.cap.answer = answering(error='rpc "x": <timeout> & retry')
    params = capability_params(reference_id="c5", payload=sdk_payload())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c5"))
    assert raw.endswith(b'"result":{"error":"rpc \\"x\\": \\u003ctimeout\\u003e \\u0026 retry"}}')
    assert logged_errors(caplog, "req-c5") == []


async def test_an_empty_capability_answer_is_an_empty_result(relay: Relay) -> None:
    """2.4: neither payload nor error gives an empty CapabilityResponse, `""` omitted: `{}`."""
    relay.cap.answer = answering()
    params = capability_params(reference_id="c6", payload=sdk_payload())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c6"))
    assert raw.endswith(b'"method":"confidential.capability.execute","result":{}}')


# --- error rows -------------------------------------------------------------------------------


async def test_an_unknown_capability_is_a_sanitised_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 4: GetExecutable fails; `internal error`, `capability not found: ...` only logged."""
    params = capability_params(capability_id="missing@9.9.9", payload=sdk_payload())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params))
    err = assert_internal(
        raw, caplog, request_id="req-1", method=METHOD, detail=NOT_FOUND, prefix=True
    )
    assert err.endswith(" missing@9.9.9"), err


async def test_a_method_too_long_for_a_subject_is_refused_and_the_node_keeps_serving(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """A 6,000-byte method: no such subject can exist, so `internal error` at once, like a
    method nobody serves; the dispatch actor's connection survives (nats-server would close it
    on a protocol line that long)."""
    params = capability_params(reference_id="c-long", payload=sdk_payload(method="m." * 3000))
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-long"))
    assert_internal(
        raw,
        caplog,
        request_id="req-long",
        method=METHOD,
        detail="capability unreachable: no responders on cap.v1.",
        prefix=True,
    )
    assert relay.cap.calls == []
    params = capability_params(reference_id="c-after-long", payload=sdk_payload())
    relay.cap.answer = answering(payload=b"")
    after = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-after"))
    assert result_of(after, "req-after") == {}


@pytest.mark.parametrize(
    ("payload", "offset"),
    [("ab$d", 2), ("abc", 0), ("Zm9v=", 4), ("Zm9vYg", 4), ("Zm9v\n====", 5)],
)
async def test_a_payload_that_is_not_base64_is_invalid_params_with_gos_offset(
    relay: Relay, caplog: pytest.LogCaptureFixture, payload: str, offset: int
) -> None:
    """Row 5: -32602 `failed to decode payload: illegal base64 data at input byte <n>`."""
    params = capability_params(payload=payload)
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params))
    message = f"failed to decode payload: illegal base64 data at input byte {offset}"
    assert raw == error_bytes("req-1", METHOD, rpc.ErrInvalidParams, message)
    assert logged_errors(caplog, "req-1") == [(rpc.ErrInvalidParams, message)]
    assert relay.cap.calls == []


@pytest.mark.parametrize(
    ("wire", "go_error"),
    [
        (b"\xff", "proto: cannot parse invalid wire-format data"),
        (b"\x0a\x05ab", "proto: cannot parse invalid wire-format data"),
        # python-protobuf accepts this varint; Go refuses it, and so must we.
        (b"\x20" + b"\xff" * 9 + b"\x02", "proto: cannot parse invalid wire-format data"),
        (b"\x1a\x01\xff", "string field contains invalid UTF-8"),
        # Go accepts 101 nested unknown groups, python-protobuf does not: Go's generic text.
        (b"\x4b" * 101 + b"\x4c" * 101, "proto: cannot parse invalid wire-format data"),
    ],
    ids=["truncated-tag", "short-length", "varint-overflow", "method-not-utf8", "deep-groups"],
)
async def test_a_payload_that_is_not_a_capability_request_is_invalid_params(
    relay: Relay, caplog: pytest.LogCaptureFixture, wire: bytes, go_error: str
) -> None:
    """Row 6: -32602 `failed to unmarshal capability request: <err>` with protobuf-go's text."""
    params = capability_params(payload=base64.b64encode(wire).decode())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params))
    message = f"failed to unmarshal capability request: {go_error}"
    assert raw == error_bytes("req-1", METHOD, rpc.ErrInvalidParams, message)
    assert logged_errors(caplog, "req-1") == [(rpc.ErrInvalidParams, message)]


@pytest.mark.parametrize("payload", ["ab$d", "/w=="], ids=["not-base64", "not-protobuf"])
async def test_a_missing_capability_beats_a_bad_payload(
    relay: Relay, caplog: pytest.LogCaptureFixture, payload: str
) -> None:
    """Ordering: GetExecutable runs before payload decoding, so the answer is -32603."""
    params = capability_params(capability_id="missing@9.9.9", payload=payload)
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params))
    err = assert_internal(
        raw, caplog, request_id="req-1", method=METHOD, detail=NOT_FOUND, prefix=True
    )
    assert err.endswith(" missing@9.9.9"), err


async def test_a_bad_payload_with_a_bad_attestation_is_an_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Ordering: attestation is checked before the payload is decoded."""
    raw = await ask(relay.nc, envelope(METHOD, capability_params(payload="ab$d")))
    assert_internal(raw, caplog, request_id="req-1", method=METHOD, detail="missing attestation")


async def test_a_capability_answer_that_is_not_an_any_is_a_sanitised_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 8: the response cannot be converted; `converting capability response: ...` logged."""
    relay.cap.answer = answering(payload=b"\xff\xff")
    params = capability_params(reference_id="c7", payload=sdk_payload())
    raw = await ask(relay.nc, attested(relay.chain, METHOD, params, "req-c7"))
    assert_internal(
        raw,
        caplog,
        request_id="req-c7",
        method=METHOD,
        detail="converting capability response: ",
        prefix=True,
    )
    assert len(relay.cap.calls) == 1
