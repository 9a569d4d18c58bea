"""PROTOCOL 2.5 `confidential.secrets.get` rows 5-10 and the 6.1 secrets behaviour, on a real node.

The Vault DON is a fake on the real `cap.v1.vault@1.0.0.vault.secrets.get` subject: it records the
vault request and answers upstream's fixture (hex("encrypted-value"), one share hex("share-1") for
the enclave key "aabbcc"), or exactly the misbehaviour a row needs.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from schemas import capability, rpc, subjects
from schemas.proto.gen import vault_pb2
from tests.integration.node_errors_support import (
    ENCLAVE_KEY,
    EXECUTION_ID,
    OWNER,
    OWNER_EIP55,
    WORKFLOW_DON_CONFIG_VERSION,
    WORKFLOW_DON_ID,
    Answer,
    Relay,
    ask,
    assert_internal,
    attested,
    packed,
    secrets_params,
    upstream_vault_response,
    vault_answer,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRETS = rpc.MethodSecretsGet


async def test_secrets_get_sends_upstreams_vault_request_and_translates_its_answer(
    relay: Relay,
) -> None:
    """6.1: one entry, EIP-55 owner, the raw lowercase owner and the local DON in the metadata."""
    raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(), "req-s1"))
    ciphertext = base64.b64encode(b"encrypted-value").decode()
    share = base64.b64encode(b"share-1").decode()
    expected = (
        '{"jsonrpc":"2.0","id":"req-s1","method":"confidential.secrets.get","result":'
        '{"secrets":[{"id":{"key":"API_KEY","namespace":"main"},'
        f'"ciphertext":"{ciphertext}","encrypted_shares":["{share}"]}}]}}}}'
    )
    assert raw == expected.encode()
    (call,) = relay.vault.calls
    assert (call.capability_id, call.method) == (rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet)
    assert call.config == b""  # an empty values.Map
    assert call.metadata == capability.CallMetadata(
        workflow_id="wf-secrets-1",
        workflow_owner=OWNER,  # raw, not normalised
        workflow_execution_id=EXECUTION_ID,
        workflow_don_id=WORKFLOW_DON_ID,
        workflow_don_config_version=WORKFLOW_DON_CONFIG_VERSION,
        reference_id="req-s1",  # the JSON-RPC id
    )
    request = _vault_request(call)
    assert (request.workflow_owner, request.org_id) == (OWNER_EIP55, "")
    (entry,) = request.requests
    assert (entry.id.key, entry.id.namespace, entry.id.owner) == ("API_KEY", "main", OWNER_EIP55)
    assert list(entry.encryption_keys) == [ENCLAVE_KEY]


def _vault_request(call: capability.CapabilityCall) -> vault_pb2.GetSecretsRequest:
    wrapped = any_pb2.Any.FromString(call.payload)
    assert wrapped.type_url == "type.googleapis.com/vault.GetSecretsRequest"
    request = vault_pb2.GetSecretsRequest()
    assert wrapped.Unpack(request)
    return request


@pytest.mark.parametrize(
    "owner", [OWNER.upper(), OWNER[2:], "0x" + OWNER[2:].upper()], ids=["0X", "bare", "upper"]
)
async def test_every_owner_form_is_hex_address_accepts_reaches_the_vault_in_eip55(
    relay: Relay, owner: str
) -> None:
    """`IsHexAddress` takes 0x/0X or no prefix and any case; the vault sees the checksum form."""
    raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(owner=owner)))
    assert b'"result"' in raw, raw
    (call,) = relay.vault.calls
    assert call.metadata.workflow_owner == owner
    assert _vault_request(call).requests[0].id.owner == OWNER_EIP55


async def test_the_vault_request_keeps_request_order_and_duplicates_and_defaults_the_namespace(
    relay: Relay,
) -> None:
    """4.1 step 4: one SecretRequest per params secret, no dedupe, no sort, "" becomes "main"."""
    secrets = [
        {"key": "B", "namespace": "ns"},
        {"key": "A", "namespace": ""},
        {"key": "B", "namespace": "ns"},
    ]
    relay.vault.answer = vault_answer(vault_pb2.GetSecretsResponse())
    raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(secrets=secrets)))
    assert raw.endswith(b'"result":{"secrets":null}}')  # no vault responses: Go's nil slice
    ids = [(e.id.key, e.id.namespace) for e in _vault_request(relay.vault.calls[0]).requests]
    assert ids == [("B", "ns"), ("A", "main"), ("B", "ns")]


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("0xnot-hex", b'"invalid owner address: \\"0xnot-hex\\""'),
        ("", b'"invalid owner address: \\"\\""'),
        (OWNER[:-1], b'"invalid owner address: \\"' + OWNER[:-1].encode() + b'\\""'),
        ("0x" + OWNER, b'"invalid owner address: \\"0x' + OWNER.encode() + b'\\""'),
        ('a"b\\c\n\t<&>', b'"invalid owner address: \\"a\\\\\\"b\\\\\\\\c\\\\n\\\\t\\u003c\\u0026\\u003e\\""'),
        ("0xé\x7f", b'"invalid owner address: \\"0x\xc3\xa9\\\\x7f\\""'),
    ],
    ids=["not-hex", "empty", "39-digits", "double-prefix", "go-quoting", "unicode-and-del"],
)  # fmt: skip
async def test_an_owner_that_is_not_a_hex_address_is_invalid_params_in_gos_quoting(
    relay: Relay, owner: str, expected: bytes
) -> None:
    """Row 5, after a good attestation: -32602 `invalid owner address: %q`, JSON as Go writes it."""
    raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(owner=owner)))
    assert raw == (
        b'{"jsonrpc":"2.0","id":"req-1","method":"confidential.secrets.get",'
        b'"error":{"code":-32602,"message":' + expected + b"}}"
    )
    assert relay.vault.calls == []


def _secret(**fields: Any) -> vault_pb2.GetSecretsResponse:
    return upstream_vault_response(**fields)


def _error_secret(error: str) -> vault_pb2.GetSecretsResponse:
    response = vault_pb2.GetSecretsResponse()
    secret = response.responses.add()
    secret.id.key, secret.id.namespace = "API_KEY", "main"
    secret.error = error
    return response


def _no_data_secret() -> vault_pb2.GetSecretsResponse:
    response = vault_pb2.GetSecretsResponse()
    secret = response.responses.add()
    secret.id.key, secret.id.namespace = "API_KEY", "main"
    return response


def _second_fails() -> vault_pb2.GetSecretsResponse:
    response = upstream_vault_response()
    response.responses.extend(_error_secret("access denied").responses)
    response.responses[1].id.key = "DB_PASSWORD"
    return response


def _outcome(**fields: Any) -> Answer:
    outcome = capability.CapabilityOutcome(**fields)
    return lambda call: outcome


VAULT_ROWS = [
    pytest.param(
        _outcome(error="vault DON: quorum not reached"),
        "vault execute failed: vault DON: quorum not reached",
        id="8-execute-error",
    ),
    pytest.param(
        _outcome(payload=packed(wrappers_pb2.StringValue(value="x"))),
        "failed to unmarshal vault response: ",
        id="9-payload-of-another-type",
    ),
    pytest.param(
        _outcome(payload=b"\xff\xff"),
        "failed to unmarshal vault response: ",
        id="9-payload-not-protobuf",
    ),
    pytest.param(_outcome(), "failed to unmarshal vault response: ", id="9-empty-payload"),
    pytest.param(
        vault_answer(_error_secret("key does not exist")),
        "vault error for secret main/API_KEY: key does not exist",
        id="10-per-secret-error",
    ),
    pytest.param(
        vault_answer(_second_fails()),
        "vault error for secret main/DB_PASSWORD: access denied",
        id="10-a-later-secret-fails-all",
    ),
    pytest.param(
        vault_answer(_no_data_secret()),
        "vault returned no data for secret main/API_KEY",
        id="10-neither-data-nor-error",
    ),
    pytest.param(
        vault_answer(_error_secret("")),
        "vault returned no data for secret main/API_KEY",
        id="10-empty-error-is-no-data",
    ),
    pytest.param(
        vault_answer(_secret(encrypted_value="zz")),
        "failed to decode encrypted value for API_KEY: encoding/hex: invalid byte: U+007A 'z'",
        id="10-encrypted-value-not-hex",
    ),
    pytest.param(
        vault_answer(_secret(encrypted_value="abc")),
        "failed to decode encrypted value for API_KEY: encoding/hex: odd length hex string",
        id="10-encrypted-value-odd-length",
    ),
    pytest.param(
        vault_answer(_secret(shares=("aabb", "xyz1"))),
        "failed to decode share: encoding/hex: invalid byte: U+0078 'x'",
        id="10-share-not-hex",
    ),
    pytest.param(
        vault_answer(_secret(shares=("0é",))),
        "failed to decode share: encoding/hex: invalid byte: U+00C3 'Ã'",
        id="10-share-not-hex-byte-not-rune",
    ),
    pytest.param(
        vault_answer(_secret(encrypted_value="00\x00a")),
        "failed to decode encrypted value for API_KEY: encoding/hex: invalid byte: U+0000",
        id="10-unprintable-byte-without-its-character",
    ),
    pytest.param(
        vault_answer(_secret(encryption_key="ddeeff")),
        "no shares found for enclave key in secret main/API_KEY",
        id="10-shares-for-another-key",
    ),
    pytest.param(
        vault_answer(_secret(encryption_key=ENCLAVE_KEY.upper())),
        "no shares found for enclave key in secret main/API_KEY",
        id="10-key-compared-case-sensitively",
    ),
    pytest.param(
        vault_answer(_secret(shares=())),
        "no shares found for enclave key in secret main/API_KEY",
        id="10-empty-share-group",
    ),
]


@pytest.mark.parametrize(("answer", "detail"), VAULT_ROWS)
async def test_a_misbehaving_vault_is_a_sanitised_internal_error_with_the_detail_logged(
    relay: Relay, caplog: pytest.LogCaptureFixture, answer: Answer, detail: str
) -> None:
    """Rows 8-10: whatever the vault got wrong, the wire says `internal error`, the log why."""
    relay.vault.answer = answer
    raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(), "req-v"))
    err = assert_internal(
        raw, caplog, request_id="req-v", method=SECRETS, detail=detail, prefix=detail.endswith(": ")
    )
    assert err.encode() not in raw
    assert len(relay.vault.calls) == 1


async def test_a_vault_nobody_serves_is_a_vault_execute_failure(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 8 when the Vault DON cannot be reached at all: NATS's no-responders is the detail."""
    await relay.vault.stop()
    try:
        raw = await ask(relay.nc, attested(relay.chain, SECRETS, secrets_params(), "req-u"))
    finally:
        await relay.vault.start(
            relay.url,
            capability_id=rpc.VaultCapabilityID,
            methods=(rpc.VaultMethodSecretsGet,),
            name="fake-vault",
        )
    subject = subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet)
    assert_internal(
        raw,
        caplog,
        request_id="req-u",
        method=SECRETS,
        detail=f"vault execute failed: no responders on {subject}",
    )
