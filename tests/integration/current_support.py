"""Shared by the current-protocol node tests: keys, EnclaveConfig, signed compute requests, and an
independent recomputation of the hashes and payloads of PROTOCOL 10.2, 10.4 and 10.8.

Everything here is written from the spec's byte layouts with `hashlib` and `cryptography`, not
with the code under test, so a test that verifies a node's signature with it checks the node's
bytes against the spec, not against themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import rpc
from tests.integration.node_errors_support import (
    ENCLAVE_KEY,
    EXECUTION_ID,
    OWNER,
    envelope,
)
from workers.attestation.testchain import TestChain
from workers.protocol import binding

SEP = b"CONFIDENTIAL_COMPUTE_PAYLOAD"
MASTER_PUBLIC_KEY = b"master-public-key"


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def put(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return u64(len(raw)) + raw


def peerid_payload(prefix: bytes, message: bytes) -> bytes:
    """libocr's domain-separated payload for a message of at most 1024 bytes (10.4)."""
    head = b" " * 64 + b"ragep2p arbitrary message signing\x00" + u64(len(prefix)) + prefix
    return head + b"\x00" + u64(len(message)) + message


class Keys:
    """Ed25519 keys whose seeds the test holds (the node's own is written to a 0600 file)."""

    def __init__(self, count: int) -> None:
        self.private = [Ed25519PrivateKey.from_private_bytes(os.urandom(32)) for _ in range(count)]
        self.public = [k.public_key().public_bytes_raw() for k in self.private]


def write_key_file(path: Path, key: Ed25519PrivateKey) -> Path:
    seed = key.private_bytes_raw()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, seed.hex().encode() + b"\n")
    os.close(fd)
    return path


def enclave_config(signers: list[bytes], f: int = 1, t: int = 1) -> dict[str, Any]:
    """The JSON a current enclave sends (10.7): signers sorted bytewise, base64."""
    return {
        "signers": [base64.b64encode(s).decode() for s in sorted(signers)],
        "master_public_key": base64.b64encode(MASTER_PUBLIC_KEY).decode(),
        "t": t,
        "f": f,
    }


def _proto_string(field: int, text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([field << 3 | 2, len(raw)]) + raw


def workflow_execution(workflow_id: str, owner: str, execution_id: str = EXECUTION_ID) -> bytes:
    """A protobuf WorkflowExecution with workflow_id (1), owner (5) and execution_id (6)."""
    return _proto_string(1, workflow_id) + _proto_string(5, owner) + _proto_string(6, execution_id)


def compute_request_hash(request: dict[str, Any]) -> bytes:
    """`ComputeRequest.Hash` (10.8) of one compute request in its JSON form."""
    names = request["CiphertextNames"] or []
    texts = [base64.b64decode(t) for t in request["ciphertexts"] or []]
    last = request["version"] if request["version"] == "0.0.6" else request["applicationRequestID"]
    h = hashlib.sha256(SEP + b"\nComputeRequest\n")
    h.update(bytes(request["requestID"]))
    h.update(put(base64.b64decode(request["publicData"] or "")))
    h.update(u64(len(names)) + b"".join(put(n) for n in names))
    h.update(u64(len(texts)) + b"".join(put(t) for t in texts))
    h.update(put(b"") + put(b""))  # enclaveEphemeralPublicKey, masterPublicKey: null here
    h.update(put(request["appID"]) + put(last))
    return h.digest()


def signed_compute_requests(
    signers: list[Ed25519PrivateKey],
    *,
    workflow_id: str,
    execution_id: str,
    owner: str = OWNER,
    public_data: bytes | None = None,
    app_id: str = rpc.ConfidentialWorkflowsCapabilityID,
) -> list[dict[str, Any]]:
    """One compute request as the CC executor builds it, signed by each of `signers`."""
    if public_data is None:
        public_data = workflow_execution(workflow_id, owner, execution_id)
    request: dict[str, Any] = {
        "requestID": list(hashlib.sha256(execution_id.encode()).digest()),
        "applicationRequestID": execution_id,
        "publicData": base64.b64encode(public_data).decode(),
        "ciphertexts": None,
        "CiphertextNames": ["API_KEY"],
        "encryptedDecryptionKeyShares": None,
        "enclaveEphemeralPublicKey": None,
        "masterPublicKey": None,
        "appID": app_id,
        "version": "0.0.6",
    }
    payload = peerid_payload(b"CONFIDENTIAL_COMPUTE_PAYLOAD_", compute_request_hash(request))
    return [
        {**request, "signature": base64.b64encode(key.sign(payload)).decode()} for key in signers
    ]


def secrets_params(relay: list[bytes], **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow_id": "wf-secrets-1",
        "owner": OWNER,
        "execution_id": EXECUTION_ID,
        "secrets": [{"key": "API_KEY", "namespace": "main"}],
        "enclave_public_key": ENCLAVE_KEY,
        "enclave_config": enclave_config(relay),
    }
    params.update(overrides)
    return params


def capability_params(relay: list[bytes], **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow_id": "wf-1",
        "owner": OWNER,
        "execution_id": EXECUTION_ID,
        "reference_id": "17",
        "capability_id": "fake-cap@1.0.0",
        "payload": "",
        "enclave_config": enclave_config(relay),
    }
    params.update(overrides)
    return params


def attested_current(
    chain: TestChain, method: str, params: dict[str, Any], request_id: str = "req-1"
) -> bytes:
    """`params` with an attestation bound as a current enclave binds it (DomainHash v2)."""
    bound = binding.bind_current(method, json.dumps(params).encode())
    document = chain.document(user_data=bound.user_data)
    return envelope(
        method, {**params, "attestation": base64.b64encode(document).decode()}, request_id
    )


def attested_v1(
    chain: TestChain, method: str, params: dict[str, Any], request_id: str = "req-1"
) -> bytes:
    """The same params bound with DomainHash v1 (the N1 binding), which a current node refuses."""
    bound = binding.bind_current(method, json.dumps(params).encode(), "v1")
    document = chain.document(user_data=bound.user_data)
    return envelope(
        method, {**params, "attestation": base64.b64encode(document).decode()}, request_id
    )


def _enclave_config_bytes(config: dict[str, Any]) -> bytes:
    signers = sorted(base64.b64decode(s) for s in config["signers"])
    return (
        u64(len(signers))
        + b"".join(put(s) for s in signers)
        + put(base64.b64decode(config["master_public_key"]))
        + int(config["t"]).to_bytes(4, "big")
        + int(config["f"]).to_bytes(4, "big")
    )


def _head(params: dict[str, Any]) -> bytes:
    return b"".join(
        put(params.get(k, "")) for k in ("workflow_id", "owner", "execution_id", "org_id")
    )


def secrets_response_hash(params: dict[str, Any], result: dict[str, Any]) -> bytes:
    """10.2 for secrets, from the params the test sent and the result the node returned."""
    h = hashlib.sha256(SEP + b"\nSecretsResponseResult\n" + _head(params))
    ids = sorted(params["secrets"], key=lambda s: (s["namespace"], s["key"]))
    h.update(u64(len(ids)) + b"".join(put(s["key"]) + put(s["namespace"]) for s in ids))
    h.update(put(params["enclave_public_key"]))
    if params.get("enclave_config") is not None:
        h.update(_enclave_config_bytes(params["enclave_config"]))
    entries = sorted(
        result["secrets"] or [],
        key=lambda e: (e["id"]["namespace"], e["id"]["key"], e["ciphertext"]),
    )
    h.update(u64(len(entries)))
    for e in entries:
        shares = sorted(e["encrypted_shares"] or [])
        h.update(put(e["id"]["key"]) + put(e["id"]["namespace"]) + put(e["ciphertext"]))
        h.update(u64(len(shares)) + b"".join(put(s) for s in shares))
    return h.digest()


def capability_response_hash(params: dict[str, Any], result: dict[str, Any]) -> bytes:
    """10.2 for a capability call."""
    h = hashlib.sha256(SEP + b"\nCapabilityResponseResult\n" + _head(params))
    h.update(put(params["reference_id"]) + put(params["capability_id"]) + put(params["payload"]))
    if params.get("enclave_config") is not None:
        h.update(_enclave_config_bytes(params["enclave_config"]))
    h.update(put(result.get("payload", "")) + put(result.get("error", "")))
    return h.digest()


def relay_payload(response_hash: bytes) -> bytes:
    return peerid_payload(b"CONFIDENTIAL_RELAY_PAYLOAD_", response_hash)
