"""`relay bench pipeline --current`: what the current protocol costs, beside n1, in one run.

Two measures:
- end to end: a second node (`node-1`, RELAY_PROTOCOL=current, the example registry's public
  development key) runs beside the n1 node on the same server, with the same vault and echo; its
  requests carry an EnclaveConfig naming the example relay DON and, for secrets, compute
  requests signed by F+1 = 2 Workflow-DON members (the example's development keys). Both nodes
  are measured in the same rounds (pipeline.py);
- per step, in this process: the median CPU time of each thing the current protocol adds to a
  request (the v2 binding of the larger params, the EnclaveConfig check, the Workflow-DON
  authorization, and the signing: decode the result, Validate, hash, Ed25519, encode).
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2

from schemas import current, rpc
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.ingress.current import sign_result
from workers.protocol import binding, compute_request, enclave_config, signed
from workers.reference import enclave_crypto
from workers.registry.devseed import dev_node_seed, dev_peer_id
from workers.runtime import nodekey

CURRENT_NODE = "node-1"
RELAY_MEMBERS = tuple(f"node-{i}" for i in range(4))  # the example registry's relay DON (F=1)
WORKFLOW_MEMBERS = tuple(f"wf-{i}" for i in range(4))  # its Workflow DON (F=1)
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"


def write_key(directory: Path) -> Path:
    """node-1's public development key, as the current node's key file (0600)."""
    path = directory / f"{CURRENT_NODE}.key"
    nodekey.write_new(path, dev_node_seed(CURRENT_NODE))
    return path


def enclave_config_json() -> dict[str, Any]:
    signers = sorted(dev_peer_id(m) for m in RELAY_MEMBERS)
    return {
        "signers": [base64.b64encode(s).decode() for s in signers],
        "master_public_key": base64.b64encode(b"bench-master-public-key").decode(),
        "t": 1,
        "f": 1,
    }


def _signed_compute_requests(workflow_id: str, execution_id: str) -> list[dict[str, Any]]:
    """The compute request the CC executor builds, signed by wf-0 and wf-1 (F+1)."""
    public_data = (
        b"\x0a" + bytes([len(workflow_id)]) + workflow_id.encode()
        + b"\x2a" + bytes([len(OWNER)]) + OWNER.encode()
    )  # fmt: skip
    request = current.SignedComputeRequest(
        request_id=hashlib.sha256(execution_id.encode()).digest(),
        application_request_id=execution_id,
        public_data=public_data,
        ciphertext_names=("API_KEY",),
        app_id=rpc.ConfidentialWorkflowsCapabilityID,
        version=compute_request.LEGACY_VERSION,
    )
    payload = compute_request.compute_request_payload(compute_request.compute_request_hash(request))
    out = []
    for member in WORKFLOW_MEMBERS[:2]:
        key = Ed25519PrivateKey.from_private_bytes(dev_node_seed(member))
        out.append(
            {
                "requestID": list(request.request_id),
                "applicationRequestID": execution_id,
                "publicData": base64.b64encode(public_data).decode(),
                "ciphertexts": None,
                "CiphertextNames": ["API_KEY"],
                "encryptedDecryptionKeyShares": None,
                "enclaveEphemeralPublicKey": None,
                "masterPublicKey": None,
                "appID": rpc.ConfidentialWorkflowsCapabilityID,
                "version": compute_request.LEGACY_VERSION,
                "signature": base64.b64encode(key.sign(payload)).decode(),
            }
        )
    return out


def mint_requests(chain: TestChain, count: int, tag: str) -> list[bytes]:
    """Current-protocol requests, both methods alternating, each with its own attestation (v2)."""
    enclave_key = enclave_crypto.public_hex(X25519PrivateKey.generate())
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="bench"))
    payload = base64.b64encode(
        sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
    ).decode()
    config = enclave_config_json()
    out = []
    for i in range(count):
        execution_id = f"{tag}-{i:060x}"
        params: dict[str, Any] = {
            "workflow_id": "wf-bench",
            "owner": OWNER,
            "execution_id": execution_id,
        }
        if i % 2:
            method = rpc.MethodCapabilityExec
            params |= {
                "reference_id": f"{tag}-{i}",
                "capability_id": "echo@1.0.0",
                "payload": payload,
                "enclave_config": config,
            }
        else:
            method = rpc.MethodSecretsGet
            params |= {
                "secrets": [{"key": "API_KEY", "namespace": "main"}],
                "enclave_public_key": enclave_key,
                "enclave_config": config,
                "signed_compute_requests": _signed_compute_requests("wf-bench", execution_id),
            }
        bound = binding.bind_current(method, json.dumps(params).encode())
        params["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
        body = {"jsonrpc": "2.0", "id": f"{tag}-{i}", "method": method, "params": params}
        out.append(json.dumps(body).encode())
    return out


def _median_us(fn: Callable[[], object], samples: int) -> float:
    fn()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)


def step_costs(chain: TestChain, samples: int = 300) -> dict[str, float]:
    """Median µs of each step the current protocol adds, measured in this process."""
    secrets_body, capability_body = (json.loads(b) for b in mint_requests(chain, 2, "cost"))
    secrets_raw = json.dumps(secrets_body["params"]).encode()
    capability_raw = json.dumps(capability_body["params"]).encode()
    n1_secrets = {
        k: v
        for k, v in secrets_body["params"].items()
        if k not in ("enclave_config", "signed_compute_requests")
    }
    n1_raw = json.dumps(n1_secrets).encode()
    bound = binding.bind_current(rpc.MethodSecretsGet, secrets_raw)
    bound_capability = binding.bind_current(rpc.MethodCapabilityExec, capability_raw)
    params = bound.params
    capability_params = bound_capability.params
    assert isinstance(params, current.SecretsRequestParams)
    assert isinstance(capability_params, current.CapabilityRequestParams)
    key = signed.NodeKey(dev_node_seed(CURRENT_NODE))
    relay = [dev_peer_id(m) for m in RELAY_MEMBERS]
    workflow = [dev_peer_id(m) for m in WORKFLOW_MEMBERS]
    secrets_result = (
        b'{"secrets":[{"id":{"key":"API_KEY","namespace":"main"},'
        b'"ciphertext":"' + base64.b64encode(b"c" * 64) + b'","encrypted_shares":["'
        + base64.b64encode(b"s" * 48) + b'"]}]}'
    )  # fmt: skip
    capability_result = b'{"payload":"' + base64.b64encode(b"p" * 64) + b'"}'
    costs = {
        "bind_n1_secrets_us": _median_us(
            lambda: binding.bind(rpc.MethodSecretsGet, n1_raw), samples
        ),
        "bind_current_secrets_us": _median_us(
            lambda: binding.bind_current(rpc.MethodSecretsGet, secrets_raw), samples
        ),
        "enclave_config_check_us": _median_us(
            lambda: enclave_config.check(params.enclave_config, 1, relay), samples
        ),
        "authorize_f_plus_1_us": _median_us(
            lambda: compute_request.authorize(params, workflow, 1), samples
        ),
        "sign_secrets_us": _median_us(
            lambda: sign_result(key, rpc.MethodSecretsGet, params, secrets_result), samples
        ),
        "sign_capability_us": _median_us(
            lambda: sign_result(
                key, rpc.MethodCapabilityExec, capability_params, capability_result
            ),
            samples,
        ),
    }
    costs["secrets_added_us"] = round(
        costs["bind_current_secrets_us"]
        - costs["bind_n1_secrets_us"]
        + costs["enclave_config_check_us"]
        + costs["authorize_f_plus_1_us"]
        + costs["sign_secrets_us"],
        1,
    )
    return costs
