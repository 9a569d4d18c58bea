"""Validly attested requests for the chaos load, and the checks of their answers."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import any_pb2, wrappers_pb2

from schemas import rpc
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.protocol import binding

OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"  # the example vault's owner


def echo_payload(text: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=text))
    return packed


def echo_request(chain: TestChain, request_id: str) -> bytes:
    """A validly attested capability call to the reference echo; the text is the request id."""
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=echo_payload(request_id))
    params: dict[str, Any] = {
        "workflow_id": "wf-chaos",
        "owner": "0xowner",
        "execution_id": "ab" * 32,
        "reference_id": request_id,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload.SerializeToString()).decode(),
    }
    return attested(chain, rpc.MethodCapabilityExec, params, request_id)


def secrets_request(chain: TestChain, request_id: str, enclave_key: str, count: int = 1) -> bytes:
    """A validly attested secrets.get of the example vault's API_KEY, `count` times over."""
    params: dict[str, Any] = {
        "workflow_id": "wf-chaos",
        "owner": OWNER,
        "execution_id": "cd" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}] * count,
        "enclave_public_key": enclave_key,
    }
    return attested(chain, rpc.MethodSecretsGet, params, request_id)


def attested(chain: TestChain, method: str, params: dict[str, Any], request_id: str) -> bytes:
    bound = binding.bind(method, json.dumps(params).encode())
    params = {
        **params,
        "attestation": base64.b64encode(chain.document(user_data=bound.user_data)).decode(),
    }
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    ).encode()


def echo_is_correct(request_id: str, body: dict[str, Any]) -> bool:
    """The echo's answer carries back exactly the text this request sent."""
    result = body.get("result")
    if not isinstance(result, dict) or "payload" not in result:
        return False
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(result["payload"]))
    return response.payload == echo_payload(request_id)


def secrets_is_correct(request_id: str, body: dict[str, Any]) -> bool:
    result = body.get("result")
    if not isinstance(result, dict) or not result.get("secrets"):
        return False
    entry = result["secrets"][0]
    return bool(
        entry["id"]["key"] == "API_KEY" and entry["ciphertext"] and entry["encrypted_shares"]
    )
