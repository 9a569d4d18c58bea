"""Go json.Marshal output for every relay wire type, and the protocol constants."""

from __future__ import annotations

import pytest

from schemas import rpc
from schemas.gojson import GoMarshalError
from schemas.rpc import SecretIdentifier as Sid

VECTOR_PARAMS = (
    b'{"workflow_id":"wf-secrets-1","owner":"0xab5801a7d398351b8be11c439e05c5b3259aec9b",'
    b'"execution_id":"0000000000000000000000000000000000000000000000000000000000000001",'
    b'"secrets":[{"key":"API_KEY","namespace":"main"}],"enclave_public_key":"aabbcc"}'
)


def test_constants_match_the_protocol_table() -> None:
    """Method names, domain tags, codes and ids are the spec's exact values."""
    assert rpc.Methods() == ("confidential.secrets.get", "confidential.capability.execute")
    assert rpc.DOMAIN_TAGS == {
        "confidential.secrets.get": "ConfidentialSecretsGet",
        "confidential.capability.execute": "ConfidentialCapabilityExecute",
    }
    assert rpc.INTERNAL_ERROR_MESSAGE == "internal error"
    assert rpc.JsonRpcVersion == "2.0"
    assert (rpc.ErrParse, rpc.ErrInvalidRequest, rpc.ErrMethodNotFound) == (-32700, -32600, -32601)
    assert (rpc.ErrInvalidParams, rpc.ErrInternal, rpc.ErrServerOverloaded) == (
        -32602,
        -32603,
        -32000,
    )
    assert (rpc.ErrUnknown, rpc.ErrLimitExceeded, rpc.ErrConflict) == (-32001, -32002, -32003)
    assert rpc.ConfidentialWorkflowsCapabilityID == "confidential-workflows@1.0.0-alpha"
    assert (rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet) == (
        "vault@1.0.0",
        "vault.secrets.get",
    )


def test_secrets_params_encode_to_the_244_byte_protocol_vector() -> None:
    """The 8.5 params struct marshals to exactly the spec's 244 bytes (no attestation key)."""
    params = rpc.SecretsRequestParams(
        workflow_id="wf-secrets-1",
        owner="0xab5801a7d398351b8be11c439e05c5b3259aec9b",
        execution_id="0" * 63 + "1",
        secrets=(Sid(key="API_KEY", namespace="main"),),
        enclave_public_key="aabbcc",
    )
    encoded = rpc.encode_secrets_params(params)
    assert encoded == VECTOR_PARAMS
    assert len(encoded) == 244


@pytest.mark.parametrize(
    ("params", "encoded"),
    [
        (
            rpc.SecretsRequestParams(),
            b'{"workflow_id":"","owner":"","execution_id":"","secrets":null,"enclave_public_key":""}',
        ),
        (
            rpc.SecretsRequestParams(secrets=()),
            b'{"workflow_id":"","owner":"","execution_id":"","secrets":[],"enclave_public_key":""}',
        ),
        (
            rpc.SecretsRequestParams(org_id="org", secrets=(Sid(),), attestation="YQ=="),
            b'{"workflow_id":"","owner":"","execution_id":"","org_id":"org",'
            b'"secrets":[{"key":"","namespace":""}],"enclave_public_key":"","attestation":"YQ=="}',
        ),
    ],
)
def test_secrets_params_follow_omitempty_and_nil_versus_empty(
    params: rpc.SecretsRequestParams, encoded: bytes
) -> None:
    """org_id and attestation vanish when empty; secrets is null when absent, [] when empty."""
    assert rpc.encode_secrets_params(params) == encoded


@pytest.mark.parametrize(
    ("params", "encoded"),
    [
        (rpc.CapabilityRequestParams(), b'{"workflow_id":"","capability_id":"","payload":""}'),
        (
            rpc.CapabilityRequestParams(
                workflow_id="w",
                owner="o",
                execution_id="e",
                org_id="g",
                reference_id="1",
                capability_id="c@1.0.0",
                payload="cA==",
                attestation="a",
            ),
            b'{"workflow_id":"w","owner":"o","execution_id":"e","org_id":"g","reference_id":"1",'
            b'"capability_id":"c@1.0.0","payload":"cA==","attestation":"a"}',
        ),
    ],
)
def test_capability_params_follow_n1_omitempty(
    params: rpc.CapabilityRequestParams, encoded: bytes
) -> None:
    """owner, execution_id, org_id, reference_id and attestation are omitempty in N1."""
    assert rpc.encode_capability_params(params) == encoded


def test_results_encode_in_go_key_order() -> None:
    """Secret entries are id{key,namespace}, ciphertext, encrypted_shares; nil slices are null."""
    result = rpc.SecretsResponseResult(
        secrets=(
            rpc.SecretEntry(
                id=Sid(key="K", namespace="main"),
                ciphertext="Y3Q=",
                encrypted_shares=("czE=", "czI="),
            ),
            rpc.SecretEntry(id=Sid(key="<&>")),
        )
    )
    assert rpc.encode_secrets_result(result) == (
        b'{"secrets":[{"id":{"key":"K","namespace":"main"},"ciphertext":"Y3Q=",'
        b'"encrypted_shares":["czE=","czI="]},{"id":{"key":"\\u003c\\u0026\\u003e","namespace":""},'
        b'"ciphertext":"","encrypted_shares":null}]}'
    )
    assert rpc.encode_secrets_result(rpc.SecretsResponseResult()) == b'{"secrets":null}'
    assert rpc.encode_capability_result(rpc.CapabilityResponseResult()) == b"{}"
    assert rpc.encode_capability_result(rpc.CapabilityResponseResult(error="boom")) == (
        b'{"error":"boom"}'
    )
    assert rpc.encode_capability_result(rpc.CapabilityResponseResult(payload="cA==")) == (
        b'{"payload":"cA=="}'
    )


def test_response_envelopes_always_carry_method_and_compact_the_result() -> None:
    """method is written even when empty; result is compacted and HTML-escaped like RawMessage."""
    assert rpc.encode_response(id="r1", method="", result=None) == (
        b'{"jsonrpc":"2.0","id":"r1","method":""}'
    )
    assert rpc.encode_response(
        id="r<1>", method="confidential.capability.execute", result=b' { "payload" : "a&b" } '
    ) == (
        b'{"jsonrpc":"2.0","id":"r\\u003c1\\u003e","method":"confidential.capability.execute",'
        b'"result":{"payload":"a\\u0026b"}}'
    )


def test_error_envelopes_match_relay_and_gateway_shapes() -> None:
    """Relay errors omit data; gateway-built errors carry data:null."""
    assert rpc.encode_error_response(
        id="1",
        method="confidential.secrets.get",
        code=rpc.ErrInvalidParams,
        message="missing params",
    ) == (
        b'{"jsonrpc":"2.0","id":"1","method":"confidential.secrets.get",'
        b'"error":{"code":-32602,"message":"missing params"}}'
    )
    assert rpc.encode_error_response(
        id="1", method="", code=rpc.ErrInternal, message="internal error", data=b"null"
    ) == (
        b'{"jsonrpc":"2.0","id":"1","method":"","error":{"code":-32603,"message":"internal error",'
        b'"data":null}}'
    )


def test_invalid_raw_result_fails_like_go_marshal() -> None:
    """A result that is not JSON cannot be marshalled; the error names RawMessage as Go does."""
    with pytest.raises(GoMarshalError):
        rpc.encode_response(id="1", method="m", result=b"{oops")


def test_request_envelope_writes_nil_params_as_null_and_drops_empty_auth() -> None:
    """Request params are a non-omitempty pointer (null when nil); auth is omitempty."""
    assert rpc.encode_request(rpc.Request(jsonrpc="2.0", id="1", method="m")) == (
        b'{"jsonrpc":"2.0","id":"1","method":"m","params":null}'
    )
    assert rpc.encode_request(rpc.Request(id="1", params=b"[ 1 ]", auth="t")) == (
        b'{"jsonrpc":"","id":"1","method":"","params":[1],"auth":"t"}'
    )


def test_decode_then_encode_round_trips_go_output() -> None:
    """Bytes that Go produced decode and re-encode to themselves, for many shapes."""
    samples = [
        VECTOR_PARAMS,
        b'{"workflow_id":"\\u003c\\u2028\\"\\\\\\n","owner":"","execution_id":"","secrets":[],"enclave_public_key":"k"}',
        b'{"workflow_id":"\xc3\xa9\xe2\x82\xac","owner":"o","execution_id":"e","org_id":"g","secrets":null,"enclave_public_key":"","attestation":"YQ=="}',
    ]
    for sample in samples:
        assert rpc.encode_secrets_params(rpc.decode_secrets_params(sample)) == sample
    cap = b'{"workflow_id":"w","reference_id":"3","capability_id":"c","payload":"p"}'
    assert rpc.encode_capability_params(rpc.decode_capability_params(cap)) == cap
