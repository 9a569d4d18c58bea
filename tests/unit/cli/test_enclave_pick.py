"""`relay enclave pick`: the 10.6 selection offline, its JSON and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import current, rpc
from workers.cli import main
from workers.protocol import enclave_config, signed

KEYS = [signed.NodeKey(bytes([i + 1]) * 32) for i in range(4)]
SECRETS = rpc.MethodSecretsGet
PARAMS = current.SecretsRequestParams(
    workflow_id="wf",
    owner="0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B",
    execution_id="00" * 32,
    secrets=(rpc.SecretIdentifier(key="API_KEY", namespace="main"),),
    enclave_public_key="ab" * 32,
    enclave_config=enclave_config.for_don([k.public_key for k in KEYS], 1, b"mpk", 1),
)
HONEST = rpc.SecretsResponseResult(
    secrets=(
        rpc.SecretEntry(
            id=rpc.SecretIdentifier(key="API_KEY", namespace="main"),
            ciphertext="Y3Q=",
            encrypted_shares=("czE=",),
        ),
    )
)
WRONG = rpc.SecretsResponseResult(secrets=())


def write(
    tmp_path: Path, signers: list[tuple[int, rpc.SecretsResponseResult]], *, envelope: bool = False
) -> tuple[Path, Path]:
    entries = [signed.sign_secrets(KEYS[i], PARAMS, r) for i, r in signers]
    raw = current.encode_secrets_bundle(
        current.SignedSecretsResponseBundle(responses=tuple(entries))
    )
    body = json.loads(raw)
    if envelope:
        body = {"jsonrpc": "2.0", "id": "r", "method": SECRETS, "result": body}
    params, bundle = tmp_path / "params.json", tmp_path / "bundle.json"
    params.write_bytes(current.encode_secrets_params(PARAMS))
    bundle.write_text(json.dumps(body))
    return params, bundle


def pick(params: Path, bundle: Path) -> int:
    return main(
        ["enclave", "pick", "--method", SECRETS, "--params", str(params), "--bundle", str(bundle)]
    )


@pytest.mark.parametrize("envelope", [False, True], ids=["result", "whole-response"])
def test_a_bundle_with_f_plus_1_signers_prints_the_hash_and_the_signer_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], envelope: bool
) -> None:
    """Exit 0 with `hash` (hex of the winning response hash) and `signers` (2) on stdout."""
    params, bundle = write(tmp_path, [(0, WRONG), (1, HONEST), (2, HONEST)], envelope=envelope)
    assert pick(params, bundle) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hash"] == signed.response_hash(SECRETS, PARAMS, HONEST).hex()
    assert (out["signers"], out["index"]) == (2, 1)
    assert out["result"] == json.loads(rpc.encode_secrets_result(HONEST))


def test_no_quorum_is_exit_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One signer per result: exit 1, upstream's no-quorum text on stderr, nothing on stdout."""
    params, bundle = write(tmp_path, [(0, WRONG), (1, HONEST)])
    assert pick(params, bundle) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no relay-DON result reached quorum: need 2 valid distinct signers" in captured.err


def test_usage_problems_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file, params that are not params, or missing arguments: exit 2."""
    params, bundle = write(tmp_path, [(0, HONEST)])
    assert pick(tmp_path / "missing.json", bundle) == 2
    params.write_text('{"secrets": 5}')
    assert pick(params, bundle) == 2
    with pytest.raises(SystemExit) as caught:
        main(["enclave", "pick", "--method", SECRETS])
    assert caught.value.code == 2
    assert "relay enclave pick" in capsys.readouterr().err
