"""The ingress's JSON-RPC behaviour (PROTOCOL 2.5) with in-memory stages."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from schemas import bus, rpc
from workers.ingress.actor import Ingress
from workers.protocol import binding
from workers.runtime.bus import StageTimeout, StageUnavailable
from workers.runtime.settings import NodeSettings

DOC = b"pretend-nitro-document"
ATTESTATION = base64.b64encode(DOC).decode()
PCRS = b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'


def secrets_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow_id": "wf-secrets-1",
        "owner": "0xab5801a7d398351b8be11c439e05c5b3259aec9b",
        "execution_id": "00" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": "aabbcc",
        "attestation": ATTESTATION,
    }
    params.update(overrides)
    return params


def envelope(method: str = rpc.MethodSecretsGet, params: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": "req-1", "method": method}
    if params is not None:
        body["params"] = params
    body.update(extra)
    return json.dumps(body).encode()


@dataclass
class FakeStages:
    """Stages that accept a document only when it is bound to the params it came with."""

    measurements_reply: bus.Measurements | bus.StageError = field(
        default_factory=lambda: bus.Measurements(revision=1, trusted_values=[PCRS])
    )
    dispatch_reply: bus.DispatchReply = field(
        default_factory=lambda: bus.DispatchResult(result=msgspec.Raw(b'{"secrets":null}'))
    )
    verify_error: Exception | None = None
    verified: list[bus.VerifyRequest] = field(default_factory=list)
    dispatched: list[bus.DispatchRequest] = field(default_factory=list)
    accept_user_data: bytes | None = None

    async def measurements(self, deadline: float) -> bus.Measurements | bus.StageError:
        return self.measurements_reply

    async def verify(self, req: bus.VerifyRequest, deadline: float) -> bus.VerifyReply:
        self.verified.append(req)
        if self.verify_error is not None:
            raise self.verify_error
        if self.accept_user_data is not None and req.expected_user_data != self.accept_user_data:
            return bus.StageError(code=-32603, message="internal error", detail="user data")
        return bus.Verified(module_id="m", timestamp_ms=1, is_debug=False)

    async def dispatch(self, req: bus.DispatchRequest, deadline: float) -> bus.DispatchReply:
        self.dispatched.append(req)
        return self.dispatch_reply


def ingress(stages: FakeStages) -> Ingress:
    return Ingress(stages, settings=NodeSettings(request_timeout_s=2.0))


async def answer(stages: FakeStages, raw: bytes) -> dict[str, Any]:
    out = await ingress(stages).handle(raw)
    decoded: dict[str, Any] = json.loads(out)
    return decoded


async def test_a_bound_request_is_verified_then_dispatched_and_its_result_returned() -> None:
    """A valid request reaches dispatch with params minus attestation, and the result comes back."""
    params = secrets_params()
    bound = binding.bind(rpc.MethodSecretsGet, json.dumps(params).encode())
    stages = FakeStages(accept_user_data=bound.user_data)
    response = await answer(stages, envelope(params=params))
    assert response == {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": rpc.MethodSecretsGet,
        "result": {"secrets": None},
    }
    assert stages.verified[0].document == DOC
    assert bytes(stages.dispatched[0].params) == bound.params_json
    assert b"attestation" not in bytes(stages.dispatched[0].params)


async def test_the_response_bytes_are_go_encoded_with_method_always_present() -> None:
    """The exact bytes of an error answer: key order, method kept, no data key."""
    out = await ingress(FakeStages()).handle(envelope(method="unknown.method"))
    assert out == (
        b'{"jsonrpc":"2.0","id":"req-1","method":"unknown.method",'
        b'"error":{"code":-32601,"message":"unsupported method: unknown.method"}}'
    )


@pytest.mark.parametrize("params", [None, "null"])
async def test_missing_or_null_params_is_invalid_params(params: str | None) -> None:
    """Absent and null params both answer -32602 `missing params`."""
    raw = (
        envelope()
        if params is None
        else b'{"jsonrpc":"2.0","id":"req-1","method":"confidential.secrets.get","params":null}'
    )
    response = await answer(FakeStages(), raw)
    assert response["error"] == {"code": -32602, "message": "missing params"}


async def test_a_syntax_error_inside_params_makes_the_whole_request_a_parse_error() -> None:
    """The bytes are one JSON document: Go's Unmarshal of the envelope fails first, so it is
    -32700 with encoding/json's text and no id (row 2's -32602 needs params that parse)."""
    raw = b'{"jsonrpc":"2.0","id":"req-1","method":"confidential.secrets.get","params":{"a":1,}}'
    response = await answer(FakeStages(), raw)
    assert response == {
        "jsonrpc": "2.0",
        "id": "",
        "method": "",
        "error": {
            "code": -32700,
            "message": "invalid character '}' looking for beginning of object key string",
        },
    }


async def test_a_type_mismatch_in_params_is_invalid_params_with_go_text() -> None:
    """A number where Go expects a string gives Go's UnmarshalTypeError text."""
    response = await answer(FakeStages(), envelope(params=secrets_params(workflow_id=5)))
    assert response["error"] == {
        "code": -32602,
        "message": "json: cannot unmarshal number into Go struct field "
        "SecretsRequestParams.workflow_id of type string",
    }


async def test_a_missing_attestation_is_a_sanitised_internal_error() -> None:
    """No attestation: -32603 with only `internal error` on the wire."""
    stages = FakeStages()
    response = await answer(stages, envelope(params=secrets_params(attestation="")))
    assert response["error"] == {"code": -32603, "message": "internal error"}
    assert stages.verified == []


async def test_attestation_that_is_not_base64_is_a_sanitised_internal_error() -> None:
    """Bad base64 never reaches the verifier and leaks no decoder text."""
    stages = FakeStages()
    response = await answer(stages, envelope(params=secrets_params(attestation="!!notb64")))
    assert response["error"] == {"code": -32603, "message": "internal error"}
    assert stages.verified == []


async def test_attestation_is_checked_before_the_owner() -> None:
    """A bad owner with a bad attestation answers -32603 (attestation first), not -32602."""
    stages = FakeStages(accept_user_data=b"\x00" * 32)
    response = await answer(stages, envelope(params=secrets_params(owner="not-an-address")))
    assert response["error"] == {"code": -32603, "message": "internal error"}
    assert stages.dispatched == []


async def test_a_registry_failure_fails_closed() -> None:
    """No registry config: -32603, no verification attempted."""
    stages = FakeStages(
        measurements_reply=bus.StageError(code=-32603, message="internal error", detail="none")
    )
    response = await answer(stages, envelope(params=secrets_params()))
    assert response["error"] == {"code": -32603, "message": "internal error"}
    assert stages.verified == []


async def test_an_empty_measurement_list_fails_closed() -> None:
    """Zero trusted sets: -32603 before verification."""
    stages = FakeStages(measurements_reply=bus.Measurements(revision=1, trusted_values=[]))
    response = await answer(stages, envelope(params=secrets_params()))
    assert response["error"]["code"] == -32603
    assert stages.verified == []


@pytest.mark.parametrize(
    "failure", [StageTimeout("relay.v1.x", 1.0), StageUnavailable("relay.v1.x")]
)
async def test_an_unreachable_stage_gives_a_timely_internal_error(failure: Exception) -> None:
    """A dead or slow verifier ends as -32603 `internal error`, never as an exception."""
    response = await answer(FakeStages(verify_error=failure), envelope(params=secrets_params()))
    assert response["error"] == {"code": -32603, "message": "internal error"}


async def test_dispatch_errors_keep_their_code_and_only_internal_ones_are_sanitised() -> None:
    """-32602 from dispatch reaches the wire as is; -32603 detail does not."""
    bad_owner = FakeStages(
        dispatch_reply=bus.StageError(
            code=-32602, message='invalid owner address: "zz"', detail="owner"
        )
    )
    response = await answer(bad_owner, envelope(params=secrets_params()))
    assert response["error"] == {"code": -32602, "message": 'invalid owner address: "zz"'}
    vault_down = FakeStages(
        dispatch_reply=bus.StageError(
            code=-32603, message="vault execute failed: boom", detail="vault execute failed: boom"
        )
    )
    response = await answer(vault_down, envelope(params=secrets_params()))
    assert response["error"] == {"code": -32603, "message": "internal error"}


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xff\xfe", b"[]", b"null", b'{"id":5}', b"{" * 5000, b'{"id":"x","method":'],
)
async def test_any_bytes_get_a_well_formed_json_rpc_error(raw: bytes) -> None:
    """Garbage on the subject still gets a parseable JSON-RPC error envelope."""
    response = await answer(FakeStages(), raw)
    assert response["jsonrpc"] == "2.0"
    assert isinstance(response["error"]["code"], int)
    assert response["error"]["code"] < 0


@dataclass
class RecordedMetrics:
    """A RelayMetrics that keeps what the ingress recorded."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def record_request(self, **fields: Any) -> None:
        self.requests.append(fields)

    def internal_error(self, gateway_id: str, error_code: int) -> None:
        pass

    def success(self, gateway_id: str) -> None:
        pass

    def stage_latency(self, stage: str, seconds: float) -> None:
        pass


async def test_metrics_label_a_made_up_method_as_unsupported_and_real_ones_by_name() -> None:
    """A client cannot mint a time series per method name: unknown ones share one label."""
    metrics = RecordedMetrics()
    node = Ingress(FakeStages(), settings=NodeSettings(request_timeout_s=2.0), metrics=metrics)
    await node.handle(envelope(method="confidential." + "x" * 10_000, params={}))
    await node.handle(envelope(params=secrets_params()))
    assert [r["method"] for r in metrics.requests] == ["unsupported", rpc.MethodSecretsGet]
    assert metrics.requests[0]["error_code"] == rpc.ErrMethodNotFound


async def test_a_request_that_waited_out_its_budget_in_the_queue_is_not_served() -> None:
    """Received longer ago than the budget: a prompt internal error, no stage is asked."""
    stages = FakeStages()
    node = Ingress(stages, settings=NodeSettings(request_timeout_s=2.0))
    raw = await node.handle(envelope(params=secrets_params()), received_at=time.monotonic() - 3.0)
    assert json.loads(raw)["error"] == {"code": -32603, "message": "internal error"}
    assert stages.verified == []
    assert stages.dispatched == []


def test_an_ingress_under_current_cannot_be_built_without_its_key_and_memo() -> None:
    """RELAY_PROTOCOL=current without the signing parts (or n1 with them) is refused."""
    with pytest.raises(ValueError, match="RELAY_PROTOCOL=current needs"):
        Ingress(FakeStages(), settings=NodeSettings(protocol="current"))
