"""`relay attest verify|inspect|hash` through the real command line entry point."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from workers.attestation.testchain import TestChain
from workers.cli import main

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nitro"
BASE = VECTORS / "base_2024-11-30.bin"
BASE_META = json.loads((VECTORS / "base_2024-11-30.json").read_text())
AT = str(BASE_META["verify_at_unix_s"])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_accepts_a_real_document_at_its_time(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 and a JSON verdict with the module id and PCRs."""
    code, out, _ = run(capsys, "attest", "verify", str(BASE), "--at", AT)
    assert code == 0
    verdict = json.loads(out)
    assert verdict["valid"] is True
    assert verdict["module_id"] == BASE_META["module_id"]
    assert verdict["pcrs"]["0"] == BASE_META["pcr0"]


def test_verify_rejects_an_expired_document_now(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --at the real clock is used: a 2024 document is rejected with exit 1."""
    code, out, _ = run(capsys, "attest", "verify", str(BASE))
    assert code == 1
    assert json.loads(out)["reason"] == "cert_expired"


def test_verify_checks_pcrs_and_user_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Matching PCRs pass; a user_data the document does not carry is rejected."""
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_text(json.dumps([{k: BASE_META[k] for k in ("pcr0", "pcr1", "pcr2")}]))
    code, out, _ = run(capsys, "attest", "verify", str(BASE), "--at", AT, "--pcrs", str(pcrs))
    assert code == 0
    assert json.loads(out)["matched_pcrs"]["pcr0"] == BASE_META["pcr0"]
    code, out, _ = run(capsys, "attest", "verify", str(BASE), "--at", AT, "--user-data", "00" * 32)
    assert code == 1
    assert json.loads(out)["reason"] == "user_data_mismatch"


def test_verify_takes_an_explicit_development_root(capsys: pytest.CaptureFixture[str]) -> None:
    """The marlin mock document verifies with --root and its own root certificate."""
    code, out, _ = run(
        capsys,
        "attest",
        "verify",
        str(VECTORS / "NEG_marlin_custom_root_2024-12-13.bin"),
        "--at",
        "1734080745",
        "--root",
        str(VECTORS / "NEG_marlin_custom_root.crt.der"),
    )
    assert code == 0, out
    assert json.loads(out)["root"] == "development"


@pytest.mark.parametrize(
    "argv",
    [
        ["attest", "verify", "/nonexistent.bin"],
        ["attest", "verify", str(BASE), "--user-data", "zz"],
        ["attest", "verify", str(BASE), "--root", str(BASE)],
        ["attest", "verify", str(BASE), "--at", "yesterday"],
        ["attest", "verify"],
    ],
)
def test_usage_errors_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Unreadable files, bad hex, a non-certificate root and bad numbers are usage errors."""
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.strip()


def test_inspect_prints_the_decoded_document(capsys: pytest.CaptureFixture[str]) -> None:
    """inspect shows the fields without verifying; a corrupt document exits 1."""
    code, out, _ = run(capsys, "attest", "inspect", str(BASE))
    assert code == 0
    assert json.loads(out)["module_id"] == BASE_META["module_id"]
    code, out, _ = run(
        capsys, "attest", "inspect", str(VECTORS / "NEG_base_2026-01-03_corrupt_unrepaired.bin")
    )
    assert code == 1
    assert json.loads(out)["reason"] == "malformed_cbor"


def test_hash_prints_the_binding_of_params(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The PROTOCOL 8.5 secrets vector: v1 hash e4b66528… of the 244-byte JSON."""
    params = tmp_path / "params.json"
    params.write_text(
        '{"workflow_id":"wf-secrets-1","owner":"0xab5801a7d398351b8be11c439e05c5b3259aec9b",'
        '"execution_id":"0000000000000000000000000000000000000000000000000000000000000001",'
        '"secrets":[{"key":"API_KEY","namespace":"main"}],"enclave_public_key":"aabbcc"}'
    )
    code, out, _ = run(
        capsys, "attest", "hash", "--method", "confidential.secrets.get", "--params", str(params)
    )
    assert code == 0
    assert out.strip() == "e4b66528cfe9daf0c6cecc5f1c41e6a2710c6775967b9b4c1e8cf864cdc4c321"


def test_verify_accepts_a_generated_tag_18_document_with_its_root_pcrs_and_user_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A generated document (our own test chain) passes with --root PEM, one PCR object and --user-data."""
    chain = TestChain()
    user_data = bytes(range(32))
    doc = tmp_path / "doc.bin"
    doc.write_bytes(chain.sign(chain.payload(user_data=user_data), tag18=True))
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_bytes(chain.trusted_values_json())
    argv = ["attest", "verify", str(doc), "--root", str(root), "--pcrs", str(pcrs)]
    code, out, _ = run(capsys, *argv, "--user-data", user_data.hex(), "--max-age", "300")
    assert code == 0, out
    verdict = json.loads(out)
    assert verdict["user_data"] == user_data.hex()
    assert verdict["timestamp"].startswith(str(dt.datetime.now(dt.UTC).year))
    code, out, _ = run(capsys, *argv, "--user-data", "00" * 32)
    assert (code, json.loads(out)["reason"]) == (1, "user_data_mismatch")


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_max_age_that_is_not_a_positive_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """--max-age must be a finite positive number of seconds."""
    code, _, err = run(capsys, "attest", "verify", str(BASE), "--at", AT, "--max-age", value)
    assert code == 2
    assert "--max-age" in err


def test_inspect_lists_the_chain_from_leaf_to_root(capsys: pytest.CaptureFixture[str]) -> None:
    """The chain summary runs leaf first and ends with the AWS root's thirty-year window."""
    code, out, _ = run(capsys, "attest", "inspect", str(BASE))
    assert code == 0
    chain = json.loads(out)["chain"]
    assert [c["ca"] for c in chain] == [False, True, True, True, True]
    assert [c["path_length"] for c in chain] == [None, 0, 1, 2, None]
    assert "aws.nitro-enclaves" in chain[-1]["subject"]
    assert chain[0]["not_before"] <= BASE_META["verify_at_unix_s"] <= chain[0]["not_after"]
