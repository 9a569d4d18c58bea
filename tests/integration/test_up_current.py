"""`relay up` under RELAY_PROTOCOL=current: the example registry's public development key signs."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import any_pb2, wrappers_pb2

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.protocol import binding, signed
from workers.registry.devseed import dev_peer_id, seed_with_measurements
from workers.runtime.bus import connect, request
from workers.runtime.credentials import credentials_for

DON, NODE = "relay-don", "node-0"


def echo_request(chain: TestChain, signers: list[bytes]) -> tuple[dict[str, Any], bytes]:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="hi"))
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
    params: dict[str, Any] = {
        "workflow_id": "wf-up",
        "owner": "0x" + "ab" * 20,
        "execution_id": "ab" * 32,
        "reference_id": "up-current-1",
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload).decode(),
        "enclave_config": {
            "signers": [base64.b64encode(s).decode() for s in sorted(signers)],
            "master_public_key": base64.b64encode(b"mpk").decode(),
            "t": 1,
            "f": 1,
        },
    }
    bound = binding.bind_current(rpc.MethodCapabilityExec, json.dumps(params).encode())
    attestation = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
    body = {
        "jsonrpc": "2.0",
        "id": "up-current-1",
        "method": rpc.MethodCapabilityExec,
        "params": {**params, "attestation": attestation},
    }
    return params, json.dumps(body).encode()


async def ask_as_gateway(url: str, raw: bytes) -> dict[str, Any]:
    user, password = credentials_for("gateway")
    nc = await connect(url, actor="gateway", user=user, password=password)
    try:
        answer: dict[str, Any] = json.loads(
            await request(nc, subjects.rpc(DON, NODE), raw, timeout_s=10)
        )
        return answer
    finally:
        await nc.close()


def test_up_under_current_signs_with_the_development_key_the_example_registry_lists(
    tmp_path: Path,
) -> None:
    """Without RELAY_NODE_KEY, `relay up` warns and signs as node-0's public dev key; the answer
    verifies under the peer id deploy/registry.example.json gives node-0."""
    chain = TestChain()
    root, seed = tmp_path / "root.pem", tmp_path / "seed.json"
    root.write_bytes(chain.root_pem)
    seed.write_text(json.dumps(seed_with_measurements([chain.trusted_values_json()])))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["RELAY_PROTOCOL"] = "current"
    argv = ["up", "--seed", str(seed), "--dev-root", str(root), "--metrics-port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not any(line.startswith("Ctrl-C") for line in lines):
            assert time.monotonic() < deadline, lines
            line = proc.stdout.readline()
            assert line, f"relay up exited early ({proc.wait()}): {lines}"
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        assert "PUBLIC development key of node-0" in text
        assert dev_peer_id(NODE).hex() in text
        url = re.search(r"embedded nats-server (nats://\S+)", text)
        assert url is not None
        relay_don = [dev_peer_id(f"node-{i}") for i in range(4)]
        params, raw = echo_request(chain, relay_don)
        answer = asyncio.run(ask_as_gateway(url.group(1), raw))
        body = answer["result"]
        bound = binding.bind_current(rpc.MethodCapabilityExec, json.dumps(params).encode())
        response_hash = signed.capability_response_hash(
            bound.params,  # type: ignore[arg-type]
            rpc.CapabilityResponseResult(**body["result"]),
        )
        Ed25519PublicKey.from_public_bytes(dev_peer_id(NODE)).verify(
            base64.b64decode(body["signature"]["signature"]), signed.relay_payload(response_hash)
        )
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
