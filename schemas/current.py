"""The current protocol's wire values (PROTOCOL 10.5, 10.7, 10.8, 10.12), Go-exact.

The `n1` contract (`schemas.rpc`) is left exactly as it is: a node serving `n1` decodes and
re-marshals the params with the N1 field set, and this module is the field set of
chainlink-common `main` (`ca8040799`) that current enclaves attest:

- `SecretsRequestParams` gains `enclave_config` (pointer, omitempty) after `enclave_public_key`
  and `signed_compute_requests` (omitempty) after `attestation`;
- `CapabilityRequestParams` has `owner`, `execution_id` and `reference_id` always written (no
  omitempty since `5637bdfdf`) and gains `enclave_config` before `attestation`;
- the signed results carry `signature` (always) and the deprecated `signatures` (omitempty).

Python values: `[]byte` is `bytes`, or None for a nil slice (`null`); `requestID` (`[32]byte`) is
32 bytes; lists are tuples, or None for nil; `perNodeData` a dict, or None. Attribute names are
snake_case; the JSON keys (Go's tags, such as `requestID` and `CiphertextNames`) are in the
shapes below. As in `schemas.rpc`, never encode these Structs with msgspec directly.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from schemas import rpc
from schemas.gojson import (
    BYTES,
    STRING,
    STRING_MAP,
    UINT32,
    GoSlice,
    GoStruct,
    SliceField,
    StringField,
    StructField,
    ValueField,
    byte_array,
    marshal,
    plain,
    slice_of,
    unmarshal,
)

__all__ = [
    "CapabilityRequestParams",
    "EnclaveConfig",
    "RelayResponseSignature",
    "SecretsRequestParams",
    "SignedCapabilityResponseBundle",
    "SignedCapabilityResponseResult",
    "SignedComputeRequest",
    "SignedSecretsResponseBundle",
    "SignedSecretsResponseResult",
    "decode_capability_bundle",
    "decode_capability_params",
    "decode_capability_result",
    "decode_enclave_config",
    "decode_secrets_bundle",
    "decode_secrets_params",
    "decode_secrets_result",
    "decode_signed_capability_result",
    "decode_signed_compute_request",
    "decode_signed_secrets_result",
    "encode_capability_bundle",
    "encode_capability_params",
    "encode_enclave_config",
    "encode_secrets_bundle",
    "encode_secrets_params",
    "encode_signed_capability_result",
    "encode_signed_secrets_result",
]

REQUEST_ID_SIZE: Final = 32

# --------------------------------------------------------------------------- values


class EnclaveConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The relay DON as the enclave knows it (10.7); every key always written."""

    signers: tuple[bytes | None, ...] | None = None
    master_public_key: bytes | None = None
    t: int = 0
    f: int = 0


class SignedComputeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One Workflow-DON node's signed compute request (10.8), ComputeRequest flattened in."""

    request_id: bytes = bytes(REQUEST_ID_SIZE)
    application_request_id: str = ""
    public_data: bytes | None = None
    ciphertexts: tuple[bytes | None, ...] | None = None
    ciphertext_names: tuple[str, ...] | None = None
    encrypted_decryption_key_shares: tuple[tuple[bytes | None, ...] | None, ...] | None = None
    enclave_ephemeral_public_key: bytes | None = None
    master_public_key: bytes | None = None
    app_id: str = ""
    version: str = ""
    signature: bytes | None = None
    per_node_data: dict[str, str] | None = None


class SecretsRequestParams(msgspec.Struct, frozen=True, kw_only=True):
    """`confidential.secrets.get` params at chainlink-common `main` (10.12)."""

    workflow_id: str = ""
    owner: str = ""
    execution_id: str = ""
    org_id: str = ""
    secrets: tuple[rpc.SecretIdentifier, ...] | None = None
    enclave_public_key: str = ""
    enclave_config: EnclaveConfig | None = None
    attestation: str = ""
    signed_compute_requests: tuple[SignedComputeRequest, ...] | None = None


class CapabilityRequestParams(msgspec.Struct, frozen=True, kw_only=True):
    """`confidential.capability.execute` params at chainlink-common `main` (10.12)."""

    workflow_id: str = ""
    owner: str = ""
    execution_id: str = ""
    org_id: str = ""
    reference_id: str = ""
    capability_id: str = ""
    payload: str = ""
    enclave_config: EnclaveConfig | None = None
    attestation: str = ""


class RelayResponseSignature(msgspec.Struct, frozen=True, kw_only=True):
    """A node's signature over its response (10.4): `signer` is a claim nobody trusts."""

    signer: bytes | None = None
    signature: bytes | None = None


class SignedSecretsResponseResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a current node answers for secrets; `signatures` is deprecated (omitempty)."""

    result: rpc.SecretsResponseResult = rpc.SecretsResponseResult()
    signatures: tuple[RelayResponseSignature, ...] | None = None
    signature: RelayResponseSignature = RelayResponseSignature()


class SignedCapabilityResponseResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a current node answers for a capability call."""

    result: rpc.CapabilityResponseResult = rpc.CapabilityResponseResult()
    signatures: tuple[RelayResponseSignature, ...] | None = None
    signature: RelayResponseSignature = RelayResponseSignature()


class SignedSecretsResponseBundle(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's bundle of node answers (10.10); the gateway always writes a list."""

    responses: tuple[SignedSecretsResponseResult, ...] | None = None


class SignedCapabilityResponseBundle(msgspec.Struct, frozen=True, kw_only=True):
    responses: tuple[SignedCapabilityResponseResult, ...] | None = None


# --------------------------------------------------------------------------- Go shapes
# `size` (unsafe.Sizeof on 64-bit Go) only shapes how a repeated key's array reuses elements.
# For SignedComputeRequest it assumes the field order of the JSON keys (ComputeRequest
# embedded first, then Signature and PerNodeData): 32 + 3*16 + 6*24 + 24 + 8 bytes.

_BYTES_LIST: Final = slice_of(BYTES)

ENCLAVE_CONFIG: Final = GoStruct(
    "EnclaveConfig",
    "confidentialrelay.EnclaveConfig",
    (
        ValueField("signers", _BYTES_LIST),
        ValueField("master_public_key", BYTES),
        ValueField("t", UINT32),
        ValueField("f", UINT32),
    ),
    size=56,
)
SIGNED_COMPUTE_REQUEST: Final = GoStruct(
    "SignedComputeRequest",
    "confidentialrelay.SignedComputeRequest",
    (
        ValueField("requestID", byte_array(REQUEST_ID_SIZE), attr="request_id"),
        ValueField("applicationRequestID", STRING, attr="application_request_id"),
        ValueField("publicData", BYTES, attr="public_data"),
        ValueField("ciphertexts", _BYTES_LIST),
        ValueField("CiphertextNames", slice_of(STRING), attr="ciphertext_names"),
        ValueField(
            "encryptedDecryptionKeyShares",
            slice_of(_BYTES_LIST),
            attr="encrypted_decryption_key_shares",
        ),
        ValueField("enclaveEphemeralPublicKey", BYTES, attr="enclave_ephemeral_public_key"),
        ValueField("masterPublicKey", BYTES, attr="master_public_key"),
        ValueField("appID", STRING, attr="app_id"),
        ValueField("version", STRING),
        ValueField("signature", BYTES),
        ValueField("perNodeData", STRING_MAP, omitempty=True, attr="per_node_data"),
    ),
    size=256,
)
SECRETS_REQUEST_PARAMS: Final = GoStruct(
    "SecretsRequestParams",
    "confidentialrelay.SecretsRequestParams",
    (
        StringField("workflow_id"),
        StringField("owner"),
        StringField("execution_id"),
        StringField("org_id", omitempty=True),
        SliceField("secrets", rpc.SECRET_IDENTIFIER),
        StringField("enclave_public_key"),
        StructField("enclave_config", ENCLAVE_CONFIG, omitempty=True, pointer=True),
        StringField("attestation", omitempty=True),
        SliceField("signed_compute_requests", SIGNED_COMPUTE_REQUEST, omitempty=True),
    ),
)
CAPABILITY_REQUEST_PARAMS: Final = GoStruct(
    "CapabilityRequestParams",
    "confidentialrelay.CapabilityRequestParams",
    (
        StringField("workflow_id"),
        StringField("owner"),
        StringField("execution_id"),
        StringField("org_id", omitempty=True),
        StringField("reference_id"),
        StringField("capability_id"),
        StringField("payload"),
        StructField("enclave_config", ENCLAVE_CONFIG, omitempty=True, pointer=True),
        StringField("attestation", omitempty=True),
    ),
)
# The result shapes of `schemas.rpc`, decodable (the enclave and the CLI read results).
SECRET_ENTRY: Final = GoStruct(
    "SecretEntry",
    "confidentialrelay.SecretEntry",
    (
        StructField("id", rpc.SECRET_IDENTIFIER),
        StringField("ciphertext"),
        ValueField("encrypted_shares", slice_of(STRING)),
    ),
    size=72,
)
SECRETS_RESPONSE_RESULT: Final = GoStruct(
    "SecretsResponseResult",
    "confidentialrelay.SecretsResponseResult",
    (SliceField("secrets", SECRET_ENTRY),),
    size=24,
)
CAPABILITY_RESPONSE_RESULT: Final = rpc.CAPABILITY_RESPONSE_RESULT
RELAY_RESPONSE_SIGNATURE: Final = GoStruct(
    "RelayResponseSignature",
    "confidentialrelay.RelayResponseSignature",
    (ValueField("signer", BYTES), ValueField("signature", BYTES)),
    size=48,
)
SIGNED_SECRETS_RESPONSE_RESULT: Final = GoStruct(
    "SignedSecretsResponseResult",
    "confidentialrelay.SignedSecretsResponseResult",
    (
        StructField("result", SECRETS_RESPONSE_RESULT),
        SliceField("signatures", RELAY_RESPONSE_SIGNATURE, omitempty=True),
        StructField("signature", RELAY_RESPONSE_SIGNATURE),
    ),
    size=96,
)
SIGNED_CAPABILITY_RESPONSE_RESULT: Final = GoStruct(
    "SignedCapabilityResponseResult",
    "confidentialrelay.SignedCapabilityResponseResult",
    (
        StructField("result", CAPABILITY_RESPONSE_RESULT),
        SliceField("signatures", RELAY_RESPONSE_SIGNATURE, omitempty=True),
        StructField("signature", RELAY_RESPONSE_SIGNATURE),
    ),
    size=104,
)
SIGNED_SECRETS_RESPONSE_BUNDLE: Final = GoStruct(
    "SignedSecretsResponseBundle",
    "confidentialrelay.SignedSecretsResponseBundle",
    (SliceField("responses", SIGNED_SECRETS_RESPONSE_RESULT),),
)
SIGNED_CAPABILITY_RESPONSE_BUNDLE: Final = GoStruct(
    "SignedCapabilityResponseBundle",
    "confidentialrelay.SignedCapabilityResponseBundle",
    (SliceField("responses", SIGNED_CAPABILITY_RESPONSE_RESULT),),
)

# --------------------------------------------------------------------------- decoding


def _items(value: GoSlice | None) -> list[dict[str, Any]] | None:
    return None if value is None else value.items()


def _enclave_config(fields: dict[str, Any] | None) -> EnclaveConfig | None:
    if fields is None:
        return None
    return EnclaveConfig(
        signers=plain(fields["signers"]),
        master_public_key=fields["master_public_key"],
        t=fields["t"],
        f=fields["f"],
    )


def _compute_request(fields: dict[str, Any]) -> SignedComputeRequest:
    per_node = fields["perNodeData"]
    return SignedComputeRequest(
        request_id=fields["requestID"],
        application_request_id=fields["applicationRequestID"],
        public_data=fields["publicData"],
        ciphertexts=plain(fields["ciphertexts"]),
        ciphertext_names=plain(fields["CiphertextNames"]),
        encrypted_decryption_key_shares=plain(fields["encryptedDecryptionKeyShares"]),
        enclave_ephemeral_public_key=fields["enclaveEphemeralPublicKey"],
        master_public_key=fields["masterPublicKey"],
        app_id=fields["appID"],
        version=fields["version"],
        signature=fields["signature"],
        per_node_data=None if per_node is None else dict(per_node),
    )


def _secret_ids(value: GoSlice | None) -> tuple[rpc.SecretIdentifier, ...] | None:
    items = _items(value)
    return None if items is None else tuple(rpc.SecretIdentifier(**i) for i in items)


def decode_secrets_params(data: bytes) -> SecretsRequestParams:
    """Go `json.Unmarshal` into the current `SecretsRequestParams`; raises `GoJSONError`."""
    fields = unmarshal(data, SECRETS_REQUEST_PARAMS)
    scr = _items(fields["signed_compute_requests"])
    return SecretsRequestParams(
        workflow_id=fields["workflow_id"],
        owner=fields["owner"],
        execution_id=fields["execution_id"],
        org_id=fields["org_id"],
        secrets=_secret_ids(fields["secrets"]),
        enclave_public_key=fields["enclave_public_key"],
        enclave_config=_enclave_config(fields["enclave_config"]),
        attestation=fields["attestation"],
        signed_compute_requests=None if scr is None else tuple(_compute_request(i) for i in scr),
    )


def decode_signed_compute_request(data: bytes) -> SignedComputeRequest:
    """Go `json.Unmarshal` of one SignedComputeRequest object; raises `GoJSONError`."""
    return _compute_request(unmarshal(data, SIGNED_COMPUTE_REQUEST))


def decode_enclave_config(data: bytes) -> EnclaveConfig:
    """Go `json.Unmarshal` of a standalone EnclaveConfig object; raises `GoJSONError`."""
    config = _enclave_config(unmarshal(data, ENCLAVE_CONFIG))
    assert config is not None  # unmarshal returns the fields of a zero struct at least
    return config


def decode_capability_params(data: bytes) -> CapabilityRequestParams:
    """Go `json.Unmarshal` into the current `CapabilityRequestParams`; raises `GoJSONError`."""
    fields = unmarshal(data, CAPABILITY_REQUEST_PARAMS)
    fields["enclave_config"] = _enclave_config(fields["enclave_config"])
    return CapabilityRequestParams(**fields)


def _secrets_result(fields: dict[str, Any]) -> rpc.SecretsResponseResult:
    items = _items(fields["secrets"])
    if items is None:
        return rpc.SecretsResponseResult(secrets=None)
    return rpc.SecretsResponseResult(
        secrets=tuple(
            rpc.SecretEntry(
                id=rpc.SecretIdentifier(**i["id"]),
                ciphertext=i["ciphertext"],
                encrypted_shares=plain(i["encrypted_shares"]),
            )
            for i in items
        )
    )


def _signature(fields: dict[str, Any]) -> RelayResponseSignature:
    return RelayResponseSignature(signer=fields["signer"], signature=fields["signature"])


def _signatures(value: GoSlice | None) -> tuple[RelayResponseSignature, ...] | None:
    items = _items(value)
    return None if items is None else tuple(_signature(i) for i in items)


def decode_secrets_result(data: bytes) -> rpc.SecretsResponseResult:
    """Go `json.Unmarshal` into `SecretsResponseResult`; raises `GoJSONError`."""
    return _secrets_result(unmarshal(data, SECRETS_RESPONSE_RESULT))


def decode_capability_result(data: bytes) -> rpc.CapabilityResponseResult:
    """Go `json.Unmarshal` into `CapabilityResponseResult`; raises `GoJSONError`."""
    return rpc.CapabilityResponseResult(**unmarshal(data, CAPABILITY_RESPONSE_RESULT))


def _signed_secrets(fields: dict[str, Any]) -> SignedSecretsResponseResult:
    return SignedSecretsResponseResult(
        result=_secrets_result(fields["result"]),
        signatures=_signatures(fields["signatures"]),
        signature=_signature(fields["signature"]),
    )


def _signed_capability(fields: dict[str, Any]) -> SignedCapabilityResponseResult:
    return SignedCapabilityResponseResult(
        result=rpc.CapabilityResponseResult(**fields["result"]),
        signatures=_signatures(fields["signatures"]),
        signature=_signature(fields["signature"]),
    )


def decode_signed_secrets_result(data: bytes) -> SignedSecretsResponseResult:
    """Go `json.Unmarshal` into `SignedSecretsResponseResult`; raises `GoJSONError`."""
    return _signed_secrets(unmarshal(data, SIGNED_SECRETS_RESPONSE_RESULT))


def decode_signed_capability_result(data: bytes) -> SignedCapabilityResponseResult:
    """Go `json.Unmarshal` into `SignedCapabilityResponseResult`; raises `GoJSONError`."""
    return _signed_capability(unmarshal(data, SIGNED_CAPABILITY_RESPONSE_RESULT))


def decode_secrets_bundle(data: bytes) -> SignedSecretsResponseBundle:
    """Go `json.Unmarshal` into `SignedSecretsResponseBundle`; raises `GoJSONError`."""
    items = _items(unmarshal(data, SIGNED_SECRETS_RESPONSE_BUNDLE)["responses"])
    return SignedSecretsResponseBundle(
        responses=None if items is None else tuple(_signed_secrets(i) for i in items)
    )


def decode_capability_bundle(data: bytes) -> SignedCapabilityResponseBundle:
    """Go `json.Unmarshal` into `SignedCapabilityResponseBundle`; raises `GoJSONError`."""
    items = _items(unmarshal(data, SIGNED_CAPABILITY_RESPONSE_BUNDLE)["responses"])
    return SignedCapabilityResponseBundle(
        responses=None if items is None else tuple(_signed_capability(i) for i in items)
    )


# --------------------------------------------------------------------------- encoding


def encode_secrets_params(params: SecretsRequestParams) -> bytes:
    """Go `json.Marshal` of the current secrets params (what a current enclave attests)."""
    return marshal(SECRETS_REQUEST_PARAMS, params)


def encode_capability_params(params: CapabilityRequestParams) -> bytes:
    """Go `json.Marshal` of the current capability params."""
    return marshal(CAPABILITY_REQUEST_PARAMS, params)


def encode_enclave_config(config: EnclaveConfig) -> bytes:
    return marshal(ENCLAVE_CONFIG, config)


def encode_signed_secrets_result(value: SignedSecretsResponseResult) -> bytes:
    """Go `json.Marshal` of a signed secrets result (the node's JSON-RPC `result`)."""
    return marshal(SIGNED_SECRETS_RESPONSE_RESULT, value)


def encode_signed_capability_result(value: SignedCapabilityResponseResult) -> bytes:
    """Go `json.Marshal` of a signed capability result (the node's JSON-RPC `result`)."""
    return marshal(SIGNED_CAPABILITY_RESPONSE_RESULT, value)


def encode_secrets_bundle(value: SignedSecretsResponseBundle) -> bytes:
    return marshal(SIGNED_SECRETS_RESPONSE_BUNDLE, value)


def encode_capability_bundle(value: SignedCapabilityResponseBundle) -> bytes:
    return marshal(SIGNED_CAPABILITY_RESPONSE_BUNDLE, value)
