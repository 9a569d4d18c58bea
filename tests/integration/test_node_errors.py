"""PROTOCOL 2.5 on a real node: dispatch, params and attestation rows of both methods, 6.1 -32601.

One node per module (registry, verifier, both dispatch actors, ingress, the reference echo) on the
module's nats-server, with fake Vault and capability DONs on their real `cap.v1` subjects. The
other rows: secrets.get after attestation in `test_node_errors_secrets.py`, capability.execute in
`test_node_errors_capability.py`, the rows that need a registry state in
`test_node_errors_registry.py`.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from schemas import rpc
from tests.integration.node_errors_support import (
    Relay,
    ask,
    assert_internal,
    attested,
    capability_params,
    envelope,
    error_bytes,
    logged_errors,
    secrets_params,
)
from workers.attestation.testchain import fake_pcrs
from workers.protocol import binding

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRETS, CAPABILITY = rpc.MethodSecretsGet, rpc.MethodCapabilityExec


# --- dispatch and params (no attestation reached) ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            envelope("unknown.method", None),
            b'{"jsonrpc":"2.0","id":"req-1","method":"unknown.method",'
            b'"error":{"code":-32601,"message":"unsupported method: unknown.method"}}',
            id="upstream-null-params",
        ),
        pytest.param(
            envelope("", None, omit=True),
            b'{"jsonrpc":"2.0","id":"req-1","method":"",'
            b'"error":{"code":-32601,"message":"unsupported method: "}}',
            id="empty-method-still-echoed",
        ),
        pytest.param(
            envelope("confidential.secrets.GET", {"owner": "bad"}),
            b'{"jsonrpc":"2.0","id":"req-1","method":"confidential.secrets.GET",'
            b'"error":{"code":-32601,"message":"unsupported method: confidential.secrets.GET"}}',
            id="case-sensitive-before-params",
        ),
        pytest.param(
            envelope("a<b>&c", None, "id-<&>"),
            b'{"jsonrpc":"2.0","id":"id-\\u003c\\u0026\\u003e","method":"a\\u003cb\\u003e\\u0026c",'
            b'"error":{"code":-32601,"message":"unsupported method: a\\u003cb\\u003e\\u0026c"}}',
            id="html-escaped-like-go",
        ),
    ],
)
async def test_an_unsupported_method_is_method_not_found_with_id_and_method_echoed(
    relay: Relay, caplog: pytest.LogCaptureFixture, raw: bytes, expected: bytes
) -> None:
    """Any method but the two answers -32601 `unsupported method: <m>`, whatever its params."""
    assert await ask(relay.nc, raw) == expected
    request = json.loads(raw)
    assert logged_errors(caplog, request["id"]) == [
        (rpc.ErrMethodNotFound, f"unsupported method: {request['method']}")
    ]


@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
@pytest.mark.parametrize("omit", [True, False], ids=["absent", "null"])
async def test_params_absent_or_null_are_missing_params(
    relay: Relay, method: str, omit: bool
) -> None:
    """Row 1 of both methods: no params value, or `null`, answers -32602 `missing params`."""
    raw = await ask(relay.nc, envelope(method, None, omit=omit))
    assert raw == error_bytes("req-1", method, rpc.ErrInvalidParams, "missing params")


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        (
            SECRETS,
            b'{"workflow_id":5}',
            "json: cannot unmarshal number into Go struct field "
            "SecretsRequestParams.workflow_id of type string",
        ),
        (
            SECRETS,
            b'{"secrets":[{"key":true}]}',
            "json: cannot unmarshal bool into Go struct field "
            "SecretIdentifier.secrets.key of type string",
        ),
        (
            SECRETS,
            b"[]",
            "json: cannot unmarshal array into Go value of type "
            "confidentialrelay.SecretsRequestParams",
        ),
        (
            CAPABILITY,
            b'{"payload":{}}',
            "json: cannot unmarshal object into Go struct field "
            "CapabilityRequestParams.payload of type string",
        ),
        (
            CAPABILITY,
            b'"{invalid json"',
            "json: cannot unmarshal string into Go value of type "
            "confidentialrelay.CapabilityRequestParams",
        ),
    ],
)
async def test_params_that_do_not_decode_are_invalid_params_with_gos_text(
    relay: Relay, caplog: pytest.LogCaptureFixture, method: str, params: bytes, message: str
) -> None:
    """Row 2: the wire message is Go's `json.Unmarshal` error text, not sanitised."""
    raw = await ask(relay.nc, envelope(method, params))
    assert raw == error_bytes("req-1", method, rpc.ErrInvalidParams, message)
    assert logged_errors(caplog, "req-1") == [(rpc.ErrInvalidParams, message)]


# --- attestation (row 3 of both methods) ------------------------------------------------------


def _params(method: str, **overrides: Any) -> dict[str, Any]:
    if method == SECRETS:
        return secrets_params(**overrides)
    return capability_params(capability_id="echo@1.0.0", **overrides)


def _with_attestation(method: str, attestation: str | None, **overrides: Any) -> bytes:
    params = _params(method, **overrides)
    if attestation is not None:
        params["attestation"] = attestation
    return envelope(method, params)


def _user_data(method: str, **overrides: Any) -> bytes:
    return binding.bind(method, json.dumps(_params(method, **overrides)).encode()).user_data


@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
@pytest.mark.parametrize(
    ("attestation", "detail"),
    [
        pytest.param(None, "missing attestation", id="absent"),
        pytest.param("", "missing attestation", id="empty"),
        pytest.param(
            "ZHVtbXk=!", "failed to decode attestation: illegal base64 data at input byte 8",
            id="not-base64",
        ),
        pytest.param(
            "ZHVtbXk", "failed to decode attestation: illegal base64 data at input byte 4",
            id="unpadded",
        ),
    ],
)  # fmt: skip
async def test_an_attestation_that_is_absent_or_not_base64_is_a_sanitised_internal_error(
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
    method: str,
    attestation: str | None,
    detail: str,
) -> None:
    """No or undecodable attestation: `internal error` on the wire, the detail in the log."""
    raw = await ask(relay.nc, _with_attestation(method, attestation))
    assert_internal(raw, caplog, request_id="req-1", method=method, detail=detail)


@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
async def test_a_document_bound_to_other_params_matches_no_trusted_set(
    relay: Relay, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    """user_data is not DomainHash(params): `no trusted measurement set matched: ...` is logged."""
    doc = relay.chain.document(user_data=_user_data(method, workflow_id="wf-other"))
    raw = await ask(relay.nc, _with_attestation(method, base64.b64encode(doc).decode()))
    expected = _user_data(method).hex()
    assert_internal(
        raw,
        caplog,
        request_id="req-1",
        method=method,
        detail=f"no trusted measurement set matched: expected user data {expected}, got "
        f"{_user_data(method, workflow_id='wf-other').hex()}",
    )


@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
@pytest.mark.parametrize(
    ("document", "detail"),
    [
        pytest.param(
            {"pcrs": fake_pcrs("another-image")},
            f"PCR0 mismatch: expected {fake_pcrs()[0].hex()}",
            id="untrusted-pcrs",
        ),
        pytest.param(
            {"timestamp_ms": int((time.time() - 600) * 1000)},
            "attestation timestamp is outside the allowed window",
            id="ten-minutes-old",
        ),
    ],
)
async def test_a_genuine_bound_document_the_policy_refuses_matches_no_trusted_set(
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
    method: str,
    document: dict[str, Any],
    detail: str,
) -> None:
    """Other PCRs than the registry trusts, or too old: the verifier's reason is logged."""
    raw = await ask(relay.nc, attested(relay.chain, method, _params(method), **document))
    assert_internal(
        raw,
        caplog,
        request_id="req-1",
        method=method,
        detail=f"no trusted measurement set matched: {detail}",
    )


@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
async def test_a_document_that_is_not_cose_matches_no_trusted_set(
    relay: Relay, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    """Upstream's dummy attestation (valid base64, not a document) is -32603 too."""
    dummy = base64.b64encode(b"dummy-attestation").decode()
    raw = await ask(relay.nc, _with_attestation(method, dummy))
    assert_internal(
        raw,
        caplog,
        request_id="req-1",
        method=method,
        detail="no trusted measurement set matched: ",
        prefix=True,
    )


@pytest.mark.parametrize(
    ("attestation", "detail"),
    [
        (None, "missing attestation"),
        ("@", "failed to decode attestation: illegal base64 data at input byte 0"),
        (base64.b64encode(b"dummy-attestation").decode(), "no trusted measurement set matched: "),
    ],
    ids=["none", "not-base64", "not-a-document"],
)
async def test_a_bad_owner_with_a_bad_attestation_is_an_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture, attestation: str | None, detail: str
) -> None:
    """Attestation is checked before the owner: both wrong gives -32603, not -32602."""
    raw = await ask(relay.nc, _with_attestation(SECRETS, attestation, owner="0xnot-hex"))
    assert_internal(
        raw, caplog, request_id="req-1", method=SECRETS, detail=detail, prefix=detail.endswith(": ")
    )
