"""Building and binding the enclave's requests (PROTOCOL 2.3, 2.4, 3.1; 10.9 for DomainHash v2).

A request is built in three steps, each usable on its own:

1. params (`secrets_params`, `capability_params`): the owner in EIP-55 form and an empty
   namespace defaulted to `main`, as upstream's enclave does before it marshals;
2. the binding (`user_data`): Go's `json.Marshal` of the params without `attestation`, hashed
   with the method's domain tag (`workers.protocol.binding.domain_hash`, v1 or v2);
3. `prepare`: the attestation document from a source, then the JSON-RPC body to send.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import msgspec

from schemas import current, rpc
from workers.enclave.attest import AttestationSource
from workers.protocol import binding, owner
from workers.protocol.binding import DomainHashVersion

Params = (
    rpc.SecretsRequestParams
    | rpc.CapabilityRequestParams
    | current.SecretsRequestParams
    | current.CapabilityRequestParams
)
SecretsParams = rpc.SecretsRequestParams | current.SecretsRequestParams


def secrets_params(
    *,
    workflow_id: str,
    owner_address: str,
    execution_id: str,
    secrets: list[tuple[str, str]],
    enclave_public_key: str,
    org_id: str = "",
    enclave_config: current.EnclaveConfig | None = None,
    signed_compute_requests: tuple[current.SignedComputeRequest, ...] | None = None,
) -> SecretsParams:
    """`confidential.secrets.get` params; `secrets` are (namespace, key) pairs, in order.

    With `enclave_config` they are the current protocol's params (10.12), else N1's. Under
    current, `signed_compute_requests` are the Workflow DON's signed compute requests the
    enclave forwards unchanged (10.8; a relay refuses secrets without F+1 of them)."""
    fields: dict[str, Any] = {
        "workflow_id": workflow_id,
        "owner": owner.to_checksum_address(owner_address),
        "execution_id": execution_id,
        "org_id": org_id,
        "secrets": tuple(
            rpc.SecretIdentifier(key=key, namespace=namespace or rpc.VaultDefaultNamespace)
            for namespace, key in secrets
        ),
        "enclave_public_key": enclave_public_key,
    }
    if enclave_config is None:
        if signed_compute_requests:
            raise ValueError("signed compute requests belong to the current protocol's params")
        return rpc.SecretsRequestParams(**fields)
    return current.SecretsRequestParams(
        **fields,
        enclave_config=enclave_config,
        signed_compute_requests=signed_compute_requests or None,
    )


def capability_params(
    *,
    workflow_id: str,
    owner_address: str,
    execution_id: str,
    reference_id: str,
    capability_id: str,
    payload: bytes,
    org_id: str = "",
    enclave_config: current.EnclaveConfig | None = None,
) -> rpc.CapabilityRequestParams | current.CapabilityRequestParams:
    """`confidential.capability.execute` params; `payload` is a serialised
    `sdk.v1alpha.CapabilityRequest` (`workers.enclave.pb.capability_request`).

    With `enclave_config` they are the current protocol's params (10.12), else N1's."""
    fields: dict[str, Any] = {
        "workflow_id": workflow_id,
        "owner": owner.to_checksum_address(owner_address),
        "execution_id": execution_id,
        "org_id": org_id,
        "reference_id": reference_id,
        "capability_id": capability_id,
        "payload": base64.b64encode(payload).decode("ascii"),
    }
    if enclave_config is None:
        return rpc.CapabilityRequestParams(**fields)
    return current.CapabilityRequestParams(**fields, enclave_config=enclave_config)


def method_of(params: Params) -> str:
    if isinstance(params, rpc.SecretsRequestParams | current.SecretsRequestParams):
        return rpc.MethodSecretsGet
    return rpc.MethodCapabilityExec


def params_json(params: Params) -> bytes:
    """Go's `json.Marshal` of the params exactly as the relay re-encodes them."""
    if isinstance(params, rpc.SecretsRequestParams):
        return rpc.encode_secrets_params(params)
    if isinstance(params, rpc.CapabilityRequestParams):
        return rpc.encode_capability_params(params)
    if isinstance(params, current.SecretsRequestParams):
        return current.encode_secrets_params(params)
    return current.encode_capability_params(params)


def user_data(params: Params, version: DomainHashVersion = "v1") -> bytes:
    """What the attestation document's `user_data` must be: DomainHash(tag, params without
    attestation)."""
    unattested = msgspec.structs.replace(params, attestation="")
    return binding.domain_hash(
        binding.domain_tag(method_of(params)), params_json(unattested), version
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request ready to send: its id, method, the params as sent, and the body."""

    id: str
    method: str
    params: Params
    body: bytes


def prepare(
    params: Params,
    *,
    request_id: str,
    source: AttestationSource,
    version: DomainHashVersion = "v1",
) -> Prepared:
    """Attest `params` through `source` and wrap them in a JSON-RPC 2.0 request."""
    document = source.attest(user_data(params, version))
    sent = msgspec.structs.replace(params, attestation=base64.b64encode(document).decode("ascii"))
    body = rpc.encode_request(
        rpc.Request(
            jsonrpc=rpc.JsonRpcVersion,
            id=request_id,
            method=method_of(sent),
            params=params_json(sent),
        )
    )
    return Prepared(id=request_id, method=method_of(sent), params=sent, body=body)


__all__ = [
    "Params",
    "Prepared",
    "capability_params",
    "method_of",
    "params_json",
    "prepare",
    "secrets_params",
    "user_data",
]
