"""The JSON-RPC contract between enclave, gateway and relay (PROTOCOL 2.1-2.4), Go-exact.

Constants keep their Go names so the code reads against the spec. Wire values are frozen
msgspec Structs; `encoding/json` semantics that a Struct cannot express (absent vs empty,
`omitempty` in struct order, case-insensitive keys, repeated keys) live in the `GoStruct`
shapes below and in `schemas.gojson`, which every encode/decode function here goes through.
Never encode these Structs with msgspec directly: that would not be Go's JSON.

Absent vs empty: `secrets=None` is a nil slice (`"secrets":null`), `secrets=()` an empty one
(`"secrets":[]`); `params=None` is a missing/`null` params value; `result=None` and
`data=None` are omitted; raw JSON values are re-encoded as Go does for `json.RawMessage`
(compacted, HTML-escaped).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from schemas.gojson import (
    GoSlice,
    GoStruct,
    IntField,
    RawField,
    SliceField,
    StringField,
    StringSliceField,
    StructField,
    marshal,
    unmarshal,
)

# --------------------------------------------------------------------------- constants

JsonRpcVersion: Final = "2.0"

MethodSecretsGet: Final = "confidential.secrets.get"
MethodCapabilityExec: Final = "confidential.capability.execute"
METHODS: Final = (MethodSecretsGet, MethodCapabilityExec)

DomainSecretsGet: Final = "ConfidentialSecretsGet"
DomainCapabilityExec: Final = "ConfidentialCapabilityExecute"
DOMAIN_TAGS: Final = {
    MethodSecretsGet: DomainSecretsGet,
    MethodCapabilityExec: DomainCapabilityExec,
}

DomainSeparator: Final = "CONFIDENTIAL_COMPUTE_PAYLOAD"  # teeattestation
RelayResponseSignaturePrefix: Final = "CONFIDENTIAL_RELAY_PAYLOAD_"  # N2+
RelayHandlerName: Final = "EnclaveRelayHandler"
RelayServiceName: Final = "ConfidentialRelayService"
INTERNAL_ERROR_MESSAGE: Final = "internal error"

ConfidentialWorkflowsCapabilityID: Final = "confidential-workflows@1.0.0-alpha"
VaultCapabilityID: Final = "vault@1.0.0"
VaultMethodSecretsGet: Final = "vault.secrets.get"
VaultDefaultNamespace: Final = "main"
GatewayHandlerType: Final = "confidential-compute-relay"
GatewayServiceName: Final = "confidential"

ErrParse: Final = -32700
ErrInvalidRequest: Final = -32600
ErrMethodNotFound: Final = -32601
ErrInvalidParams: Final = -32602
ErrInternal: Final = -32603
ErrServerOverloaded: Final = -32000
ErrUnknown: Final = -32001
ErrLimitExceeded: Final = -32002
ErrConflict: Final = -32003


def Methods() -> tuple[str, ...]:  # the Go name, on purpose
    """The relay's methods in Go's `Methods()` order: secrets first, then capability."""
    return METHODS


# --------------------------------------------------------------------------- wire values


class SecretIdentifier(msgspec.Struct, frozen=True, kw_only=True):
    key: str = ""
    namespace: str = ""


class SecretsRequestParams(msgspec.Struct, frozen=True, kw_only=True):
    """`confidential.secrets.get` params; `secrets=None` is absent/null, `()` is `[]`."""

    workflow_id: str = ""
    owner: str = ""
    execution_id: str = ""
    org_id: str = ""
    secrets: tuple[SecretIdentifier, ...] | None = None
    enclave_public_key: str = ""
    attestation: str = ""


class CapabilityRequestParams(msgspec.Struct, frozen=True, kw_only=True):
    """`confidential.capability.execute` params, N1-era field set."""

    workflow_id: str = ""
    owner: str = ""
    execution_id: str = ""
    org_id: str = ""
    reference_id: str = ""
    capability_id: str = ""
    payload: str = ""
    attestation: str = ""


class SecretEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: SecretIdentifier = SecretIdentifier()
    ciphertext: str = ""
    encrypted_shares: tuple[str, ...] | None = None


class SecretsResponseResult(msgspec.Struct, frozen=True, kw_only=True):
    secrets: tuple[SecretEntry, ...] | None = None


class CapabilityResponseResult(msgspec.Struct, frozen=True, kw_only=True):
    """Both omitempty: a capability failure is `{"error":...}`, an empty answer `{}`."""

    payload: str = ""
    error: str = ""


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON-RPC request envelope; `params` is the raw JSON value, None when absent/null."""

    jsonrpc: str = ""
    id: str = ""
    method: str = ""
    params: bytes | None = None
    auth: str = ""


class WireError(msgspec.Struct, frozen=True, kw_only=True):
    code: int = 0
    message: str = ""
    data: bytes | None = None


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON-RPC response envelope; `method` is always written, even when empty."""

    jsonrpc: str = JsonRpcVersion
    id: str = ""
    method: str = ""
    result: bytes | None = None
    error: WireError | None = None


# --------------------------------------------------------------------------- Go shapes

SECRET_IDENTIFIER: Final = GoStruct(
    "SecretIdentifier",
    "confidentialrelay.SecretIdentifier",
    (StringField("key"), StringField("namespace")),
    size=32,  # two Go strings
)
SECRETS_REQUEST_PARAMS: Final = GoStruct(
    "SecretsRequestParams",
    "confidentialrelay.SecretsRequestParams",
    (
        StringField("workflow_id"),
        StringField("owner"),
        StringField("execution_id"),
        StringField("org_id", omitempty=True),
        SliceField("secrets", SECRET_IDENTIFIER),
        StringField("enclave_public_key"),
        StringField("attestation", omitempty=True),
    ),
)
CAPABILITY_REQUEST_PARAMS: Final = GoStruct(
    "CapabilityRequestParams",
    "confidentialrelay.CapabilityRequestParams",
    (
        StringField("workflow_id"),
        StringField("owner", omitempty=True),
        StringField("execution_id", omitempty=True),
        StringField("org_id", omitempty=True),
        StringField("reference_id", omitempty=True),
        StringField("capability_id"),
        StringField("payload"),
        StringField("attestation", omitempty=True),
    ),
)
SECRET_ENTRY: Final = GoStruct(
    "SecretEntry",
    "confidentialrelay.SecretEntry",
    (
        StructField("id", SECRET_IDENTIFIER),
        StringField("ciphertext"),
        StringSliceField("encrypted_shares"),
    ),
)
SECRETS_RESPONSE_RESULT: Final = GoStruct(
    "SecretsResponseResult",
    "confidentialrelay.SecretsResponseResult",
    (SliceField("secrets", SECRET_ENTRY),),
)
CAPABILITY_RESPONSE_RESULT: Final = GoStruct(
    "CapabilityResponseResult",
    "confidentialrelay.CapabilityResponseResult",
    (StringField("payload", omitempty=True), StringField("error", omitempty=True)),
)
REQUEST: Final = GoStruct(
    "Request[encoding/json.RawMessage]",
    "jsonrpc2.Request[encoding/json.RawMessage]",
    (
        StringField("jsonrpc"),
        StringField("id"),
        StringField("method"),
        RawField("params"),
        StringField("auth", omitempty=True),
    ),
)
WIRE_ERROR: Final = GoStruct(
    "WireError",
    "jsonrpc2.WireError",
    (IntField("code"), StringField("message"), RawField("data", omitempty=True)),
)
RESPONSE: Final = GoStruct(
    "Response[encoding/json.RawMessage]",
    "jsonrpc2.Response[encoding/json.RawMessage]",
    (
        StringField("jsonrpc"),
        StringField("id"),
        StringField("method"),
        RawField("result", omitempty=True),
        StructField("error", WIRE_ERROR, omitempty=True, pointer=True),
    ),
)

# --------------------------------------------------------------------------- decoding


def _secret_ids(value: GoSlice | None) -> tuple[SecretIdentifier, ...] | None:
    if value is None:
        return None
    return tuple(SecretIdentifier(**item) for item in value.items())


def decode_request(data: bytes) -> Request:
    """Go `json.Unmarshal` into `jsonrpc2.Request[json.RawMessage]`; raises `GoJSONError`."""
    fields: dict[str, Any] = unmarshal(data, REQUEST)
    return Request(**fields)


def decode_secrets_params(data: bytes) -> SecretsRequestParams:
    """Go `json.Unmarshal` into `SecretsRequestParams`; raises `GoJSONError` with Go's text."""
    fields = unmarshal(data, SECRETS_REQUEST_PARAMS)
    fields["secrets"] = _secret_ids(fields["secrets"])
    return SecretsRequestParams(**fields)


def decode_capability_params(data: bytes) -> CapabilityRequestParams:
    """Go `json.Unmarshal` into `CapabilityRequestParams`; raises `GoJSONError`."""
    return CapabilityRequestParams(**unmarshal(data, CAPABILITY_REQUEST_PARAMS))


# --------------------------------------------------------------------------- encoding


def encode_secrets_params(params: SecretsRequestParams) -> bytes:
    """Go `json.Marshal` of the secrets params (what the attestation binding hashes)."""
    return marshal(SECRETS_REQUEST_PARAMS, params)


def encode_capability_params(params: CapabilityRequestParams) -> bytes:
    """Go `json.Marshal` of the capability params."""
    return marshal(CAPABILITY_REQUEST_PARAMS, params)


def encode_secrets_result(result: SecretsResponseResult) -> bytes:
    return marshal(SECRETS_RESPONSE_RESULT, result)


def encode_capability_result(result: CapabilityResponseResult) -> bytes:
    return marshal(CAPABILITY_RESPONSE_RESULT, result)


def encode_request(request: Request) -> bytes:
    """Go `json.Marshal` of a request envelope (`params` nil is written as `null`)."""
    return marshal(REQUEST, request)


def encode_response(*, id: str, method: str, result: bytes | None = None) -> bytes:
    """A success envelope; `result` is raw JSON, compacted and HTML-escaped as Go does."""
    return marshal(RESPONSE, Response(id=id, method=method, result=result))


def encode_error_response(
    *,
    id: str,
    method: str,
    code: int,
    message: str,
    data: bytes | None = None,
) -> bytes:
    """An error envelope; `data=None` omits `data`, `data=b"null"` writes `"data":null`."""
    error = WireError(code=code, message=message, data=data)
    return marshal(RESPONSE, Response(id=id, method=method, error=error))


def encode_envelope(response: Response) -> bytes:
    """Go `json.Marshal` of any response envelope value."""
    return marshal(RESPONSE, response)
