"""A whole relay node with its real dispatch actors, the reference vault and echo, over NATS."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.client import Client

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.node.process import NodeProcess
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import request
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

DON, NODE = "relay-don", "node-0"
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture
async def node(
    nats_server: NatsServer, chain: TestChain, nc: Client, tmp_path: Path
) -> AsyncIterator[NodeProcess]:
    await load_entries(nc, seed_entries_for(seed_with_measurements([chain.trusted_values_json()])))
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    proc = NodeProcess(
        NodeSettings(
            don=DON, node=NODE, nats_url=nats_server.url, dev_root_pem=root, request_timeout_s=5.0
        ),
        actors=(
            "registry",
            "verifier",
            "dispatch-secrets",
            "dispatch-capability",
            "vault",
            "echo",
            "ingress",
        ),
    )
    await proc.start()
    try:
        yield proc
    finally:
        await proc.stop()


def attested(
    chain: TestChain, method: str, params: dict[str, Any], request_id: str = "req-1"
) -> bytes:
    bound = binding.bind(method, json.dumps(params).encode())
    params = {
        **params,
        "attestation": base64.b64encode(chain.document(user_data=bound.user_data)).decode(),
    }
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    ).encode()


async def call(nc: Client, raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(await request(nc, subjects.rpc(DON, NODE), raw, timeout_s=10))
    return out


async def test_a_secret_arrives_encrypted_to_the_attested_enclave_key_only(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """secrets.get through the vault: the enclave's key opens the shares, another key does not."""
    enclave = X25519PrivateKey.generate()
    params = {
        "workflow_id": "wf-secrets-1",
        "owner": OWNER,
        "execution_id": "00" * 32,
        "secrets": [{"key": "API_KEY", "namespace": ""}],
        "enclave_public_key": enclave_crypto.public_hex(enclave),
    }
    response = await call(nc, attested(chain, rpc.MethodSecretsGet, params))
    assert "error" not in response, response
    (secret,) = response["result"]["secrets"]
    assert secret["id"] == {"key": "API_KEY", "namespace": "main"}
    ciphertext = base64.b64decode(secret["ciphertext"])
    shares = [base64.b64decode(s) for s in secret["encrypted_shares"]]
    bound = {"name": b"main/API_KEY", "reference": b"req-1"}  # the JSON-RPC id is the reference
    plain = enclave_crypto.decrypt_secret(ciphertext, shares, enclave, **bound)
    assert plain == b"s3cr3t-api-key-for-the-demo"
    with pytest.raises(enclave_crypto.DecryptionError):
        enclave_crypto.decrypt_secret(ciphertext, shares, X25519PrivateKey.generate(), **bound)
    with pytest.raises(enclave_crypto.DecryptionError):  # replayed into another request
        enclave_crypto.decrypt_secret(
            ciphertext, shares, enclave, name=bound["name"], reference=b"x"
        )


async def test_an_unknown_secret_is_a_sanitised_internal_error(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """N1: a per-secret vault error fails the request with -32603 `internal error`."""
    params = {
        "workflow_id": "wf",
        "owner": OWNER,
        "execution_id": "01",
        "secrets": [{"key": "NOPE", "namespace": "main"}],
        "enclave_public_key": enclave_crypto.public_hex(X25519PrivateKey.generate()),
    }
    response = await call(nc, attested(chain, rpc.MethodSecretsGet, params))
    assert response["error"] == {"code": -32603, "message": "internal error"}


async def test_a_bad_owner_after_a_good_attestation_is_invalid_params(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """The owner check runs after attestation and answers -32602 with Go's %q quoting."""
    params = {
        "workflow_id": "wf",
        "owner": "0xnot-hex",
        "execution_id": "01",
        "secrets": [],
        "enclave_public_key": "aabbcc",
    }
    response = await call(nc, attested(chain, rpc.MethodSecretsGet, params))
    assert response["error"] == {"code": -32602, "message": 'invalid owner address: "0xnot-hex"'}


def echo_params(method: str = "echo", reference: str = "17") -> dict[str, Any]:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="hello"))
    payload = sdk_pb2.CapabilityRequest(id="ignored", method=method, payload=inner, callback_id=3)
    return {
        "workflow_id": "wf-1",
        "owner": "0xowner",
        "execution_id": "00" * 32,
        "reference_id": reference,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload.SerializeToString()).decode(),
    }


async def test_the_echo_capability_answers_a_deterministic_capability_response(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """capability.execute: the result payload is a CapabilityResponse wrapping the input Any."""
    response = await call(nc, attested(chain, rpc.MethodCapabilityExec, echo_params()))
    result = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(response["result"]["payload"]))
    echoed = wrappers_pb2.StringValue()
    assert result.payload.Unpack(echoed)
    assert echoed.value == "hello"


async def test_a_capability_error_is_a_successful_result_with_error(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """Execute failing is not a JSON-RPC error: result {"error": "execution failed"}."""
    response = await call(nc, attested(chain, rpc.MethodCapabilityExec, echo_params("fail", "18")))
    assert response["result"] == {"error": "execution failed"}


async def test_an_unknown_capability_is_a_sanitised_internal_error(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """GetExecutable fails: -32603 `internal error` (detail `capability not found` is logged)."""
    params = {**echo_params(), "capability_id": "missing@9.9.9"}
    response = await call(nc, attested(chain, rpc.MethodCapabilityExec, params))
    assert response["error"] == {"code": -32603, "message": "internal error"}


async def test_a_payload_that_is_not_base64_is_invalid_params_with_gos_text(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """Bad payload base64 after a good attestation: -32602 with Go's byte offset."""
    params = {**echo_params(), "payload": "ab$d"}
    response = await call(nc, attested(chain, rpc.MethodCapabilityExec, params))
    assert response["error"] == {
        "code": -32602,
        "message": "failed to decode payload: illegal base64 data at input byte 2",
    }


async def test_a_retry_with_a_new_id_is_answered_from_the_first_execution(
    node: NodeProcess, nc: Client, chain: TestChain
) -> None:
    """Same logical call (workflow, execution, reference, capability), new JSON-RPC id: same result, one run."""
    params = echo_params(reference="retry-1")
    first = await call(nc, attested(chain, rpc.MethodCapabilityExec, params, "req-a"))
    second = await call(nc, attested(chain, rpc.MethodCapabilityExec, params, "req-b"))
    assert first["result"] == second["result"]
    assert second["id"] == "req-b"
