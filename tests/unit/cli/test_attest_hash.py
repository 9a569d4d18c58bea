"""`relay attest hash`, driven through its own parser (register_hash on a throwaway root)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from schemas import rpc
from workers.cli.attest_hash import register_hash

VECTOR_PARAMS = (
    b'{"workflow_id":"wf-secrets-1","owner":"0xab5801a7d398351b8be11c439e05c5b3259aec9b",'
    b'"execution_id":"0000000000000000000000000000000000000000000000000000000000000001",'
    b'"secrets":[{"key":"API_KEY","namespace":"main"}],"enclave_public_key":"aabbcc"}'
)
V1 = "e4b66528cfe9daf0c6cecc5f1c41e6a2710c6775967b9b4c1e8cf864cdc4c321"
V2 = "747dfcdf1a82efd9089adfdbc79f5c551b2075f492f3be15ba64de8a82fa1263"


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def run(argv: list[str], stdin: bytes = b"") -> int:
    parser = argparse.ArgumentParser(prog="relay attest")
    register_hash(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    saved = sys.stdin
    monkey = _Stdin(stdin)
    sys.stdin = monkey  # type: ignore[assignment,unused-ignore]
    try:
        code: int = args.func(args)
    finally:
        sys.stdin = saved
    return code


def test_hash_of_a_params_file_prints_the_v1_vector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--params FILE prints the hex binding hash, and --show-json the hashed bytes too."""
    path = tmp_path / "params.json"
    path.write_bytes(VECTOR_PARAMS[:-1] + b',"attestation":"YQ=="}\n')
    assert (
        run(["hash", "--method", rpc.MethodSecretsGet, "--params", str(path), "--show-json"]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [V1, VECTOR_PARAMS.decode()]


@pytest.mark.parametrize("source", [["--params", "-"], ["-"]])
def test_hash_reads_stdin_and_supports_v2(
    source: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Params can come from stdin, either as `--params -` or as a lone `-`."""
    argv = ["hash", "--method", rpc.MethodSecretsGet, *source, "--domain-hash", "v2"]
    assert run(argv, VECTOR_PARAMS) == 0
    assert capsys.readouterr().out == V2 + "\n"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (b"{i", "invalid character 'i' looking for beginning of object key string"),
        (b" null ", "missing params"),
        (
            b'{"payload":true}',
            "json: cannot unmarshal bool into Go struct field CapabilityRequestParams.payload of type string",
        ),
    ],
)
def test_undecodable_params_exit_1_with_the_go_reason(
    params: bytes, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Params the relay would reject with -32602 print Go's reason on stderr and exit 1."""
    assert run(["hash", "--method", rpc.MethodCapabilityExec, "-"], params) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == reason + "\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["hash", "--method", "confidential.nope", "-"],
        ["hash", "--method", rpc.MethodSecretsGet],
        ["hash", "--method", rpc.MethodSecretsGet, "--params", "x", "-"],
        ["hash", "--method", rpc.MethodSecretsGet, "-", "--domain-hash", "v3"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    """Unknown methods, missing or doubled sources and bad versions are usage errors."""
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A params file that cannot be read is reported on stderr with exit code 2."""
    missing = tmp_path / "missing.json"
    assert run(["hash", "--method", rpc.MethodSecretsGet, "--params", str(missing)]) == 2
    assert "cannot read params" in capsys.readouterr().err
