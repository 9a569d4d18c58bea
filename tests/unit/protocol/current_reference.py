"""A second, deliberately naive implementation of PROTOCOL 10.2, 10.4, 10.5 and 10.8, for vectors.

It works on plain JSON values (dicts from `json.loads`), writes every byte as the spec's tables
say, signs with pycryptodome's Ed25519 and writes JSON with the recipe of PROTOCOL 8.1
(`json.dumps` compact, non-ASCII raw, then `<`, `>`, `&`, U+2028, U+2029 escaped): nothing from
`schemas` or `workers`. `tests/vectors/current/*.json` are written by it (`python -m
tests.unit.protocol.current_reference`) and the tests check the relay's code against them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

from Crypto.Signature import eddsa

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "current"
SEP = b"CONFIDENTIAL_COMPUTE_PAYLOAD"


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def text(value: str) -> bytes:
    raw = value.encode()
    return u64(len(raw)) + raw


def blob(value: str | None) -> bytes:
    raw = base64.b64decode(value) if value else b""
    return u64(len(raw)) + raw


def enclave_config(params: dict[str, Any]) -> bytes:
    config = params.get("enclave_config")
    if config is None:
        return b""
    signers = sorted(base64.b64decode(s) for s in config["signers"])
    out = u64(len(signers)) + b"".join(u64(len(s)) + s for s in signers)
    return out + blob(config["master_public_key"]) + struct.pack(">II", config["t"], config["f"])


def head(params: dict[str, Any]) -> bytes:
    return b"".join(
        text(params.get(k, "")) for k in ("workflow_id", "owner", "execution_id", "org_id")
    )


def secrets_hash(params: dict[str, Any], result: dict[str, Any]) -> bytes:
    ids = sorted(params["secrets"], key=lambda i: (i["namespace"].encode(), i["key"].encode()))
    entries = sorted(
        result.get("secrets") or [],
        key=lambda e: (
            e["id"]["namespace"].encode(),
            e["id"]["key"].encode(),
            e["ciphertext"].encode(),
        ),
    )
    layout = SEP + b"\nSecretsResponseResult\n" + head(params) + u64(len(ids))
    layout += b"".join(text(i["key"]) + text(i["namespace"]) for i in ids)
    layout += text(params["enclave_public_key"]) + enclave_config(params) + u64(len(entries))
    for e in entries:
        shares = sorted(s.encode() for s in e.get("encrypted_shares") or [])
        layout += text(e["id"]["key"]) + text(e["id"]["namespace"]) + text(e["ciphertext"])
        layout += u64(len(shares)) + b"".join(u64(len(s)) + s for s in shares)
    return hashlib.sha256(layout).digest()


def capability_hash(params: dict[str, Any], result: dict[str, Any]) -> bytes:
    layout = SEP + b"\nCapabilityResponseResult\n" + head(params)
    layout += text(params["reference_id"]) + text(params["capability_id"]) + text(params["payload"])
    layout += enclave_config(params)
    layout += text(result.get("payload", "")) + text(result.get("error", ""))
    return hashlib.sha256(layout).digest()


def peerid_payload(prefix: bytes, message: bytes) -> bytes:
    return (
        b" " * 64
        + b"ragep2p arbitrary message signing\x00"
        + u64(len(prefix))
        + prefix
        + (b"\x00" + u64(len(message)) + message)
    )


def go_json(value: Any) -> str:
    out = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        out = out.replace(raw, escaped)
    return out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def signed_result(
    method: str, params: dict[str, Any], result: dict[str, Any], seed: bytes
) -> tuple[str, str]:
    """(response hash hex, the signed result JSON) for one case."""
    h = (
        secrets_hash(params, result)
        if method.endswith("secrets.get")
        else capability_hash(params, result)
    )
    key = eddsa.import_private_key(seed)
    sig = eddsa.new(key, "rfc8032").sign(peerid_payload(b"CONFIDENTIAL_RELAY_PAYLOAD_", h))
    one = {
        "signer": base64.b64encode(key.public_key().export_key(format="raw")).decode(),
        "signature": base64.b64encode(sig).decode(),
    }
    if method.endswith("secrets.get"):
        ordered: dict[str, Any] = {
            "secrets": None
            if result.get("secrets") is None
            else [
                {
                    "id": {"key": e["id"]["key"], "namespace": e["id"]["namespace"]},
                    "ciphertext": e["ciphertext"],
                    "encrypted_shares": e.get("encrypted_shares"),
                }
                for e in result["secrets"]
            ]
        }
    else:
        ordered = {k: result[k] for k in ("payload", "error") if result.get(k)}
    return h.hex(), go_json({"result": ordered, "signatures": [one], "signature": one})


def compute_request_hash(request: dict[str, Any]) -> str:
    layout = SEP + b"\nComputeRequest\n" + bytes(request["requestID"]) + blob(request["publicData"])
    names = request["CiphertextNames"] or []
    layout += u64(len(names)) + b"".join(text(n) for n in names)
    texts = request["ciphertexts"] or []
    layout += u64(len(texts)) + b"".join(blob(t) for t in texts)
    layout += blob(request["enclaveEphemeralPublicKey"]) + blob(request["masterPublicKey"])
    layout += text(request["appID"])
    last = request["version"] if request["version"] == "0.0.6" else request["applicationRequestID"]
    return hashlib.sha256(layout + text(last)).hexdigest()


def write() -> None:
    """Fill in the expected values of `signed_responses.json` and `compute_requests.json`."""
    path = VECTORS / "signed_responses.json"
    cases = json.loads(path.read_text())
    for case in cases:
        case["response_hash"], case["signed_result"] = signed_result(
            case["method"], case["params"], case["result"], bytes.fromhex(case["seed"])
        )
    path.write_text(json.dumps(cases, indent=2, ensure_ascii=False) + "\n")
    path = VECTORS / "compute_requests.json"
    requests = json.loads(path.read_text())
    for case in requests:
        case["hash"] = compute_request_hash(case["request"])
    path.write_text(json.dumps(requests, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write()
    sys.exit(0)
