"""The relay's current-protocol code against `tests/vectors/current/` (PROTOCOL 10.2-10.5, 10.8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import current, rpc
from tests.unit.protocol import current_reference
from workers.cli import main
from workers.protocol import compute_request, signed

SIGNED = json.loads((current_reference.VECTORS / "signed_responses.json").read_text())
REQUESTS = json.loads((current_reference.VECTORS / "compute_requests.json").read_text())


def _decode(case: dict[str, Any]) -> tuple[Any, Any]:
    params = json.dumps(case["params"]).encode()
    result = json.dumps(case["result"]).encode()
    if case["method"] == rpc.MethodSecretsGet:
        return current.decode_secrets_params(params), current.decode_secrets_result(result)
    return current.decode_capability_params(params), current.decode_capability_result(result)


@pytest.mark.parametrize("case", SIGNED, ids=lambda c: c["name"])
def test_signed_response_vectors(case: dict[str, Any]) -> None:
    """The library's hash and signed JSON equal the vector, and so does the naive reference."""
    h, wire = current_reference.signed_result(
        case["method"], case["params"], case["result"], bytes.fromhex(case["seed"])
    )
    assert (h, wire) == (case["response_hash"], case["signed_result"])
    params, result = _decode(case)
    assert signed.response_hash(case["method"], params, result).hex() == case["response_hash"]
    key = signed.NodeKey(bytes.fromhex(case["seed"]))
    assert signed.sign_result_json(key, case["method"], params, result) == (
        case["signed_result"].encode()
    )


@pytest.mark.parametrize("case", REQUESTS, ids=lambda c: c["name"])
def test_compute_request_vectors(case: dict[str, Any]) -> None:
    """The compute-request hash equals the vector, from the JSON and from the reference."""
    assert current_reference.compute_request_hash(case["request"]) == case["hash"]
    decoded = current.decode_signed_compute_request(json.dumps(case["request"]).encode())
    assert compute_request.compute_request_hash(decoded).hex() == case["hash"]


def test_the_cli_signs_a_vector_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay response sign` prints the vector's signed JSON, then a newline."""
    case = SIGNED[1]
    params, result, key = tmp_path / "p.json", tmp_path / "r.json", tmp_path / "node.key"
    params.write_text(json.dumps(case["params"]))
    result.write_text(json.dumps(case["result"]))
    key.write_text(case["seed"])
    key.chmod(0o600)
    argv = ["response", "sign", "--method", case["method"], "--params", str(params)]
    assert main([*argv, "--result", str(result), "--key", str(key)]) == 0
    assert capsys.readouterr().out == case["signed_result"] + "\n"
