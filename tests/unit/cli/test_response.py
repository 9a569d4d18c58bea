"""`relay response hash|sign`, through `relay`'s own main(): every exit code, every output byte."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from Crypto.Signature import eddsa

from workers.cli import main

OWNER = "0x" + "ab" * 20
CAP = "confidential.capability.execute"
SECRETS = "confidential.secrets.get"
SEED = bytes(range(32))
CAP_PARAMS = (
    '{"workflow_id":"wf","owner":"' + OWNER + '","execution_id":"e1","reference_id":"7",'
    '"capability_id":"echo@1.0.0","payload":"cGF5","attestation":"ignored"}'
)


def be64(n: int) -> bytes:
    return struct.pack(">Q", n)


def s(b: bytes) -> bytes:
    return be64(len(b)) + b


CAP_HASH = hashlib.sha256(
    b"CONFIDENTIAL_COMPUTE_PAYLOAD\nCapabilityResponseResult\n"
    + s(b"wf")
    + s(OWNER.encode())
    + s(b"e1")
    + be64(0)
    + s(b"7")
    + s(b"echo@1.0.0")
    + s(b"cGF5")
    + s(b"b3V0")
    + s(b"")
).digest()


def write(tmp_path: Path, name: str, data: str | bytes, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return str(path)


def test_response_hash_prints_the_10_2_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 and H in lowercase hex on the first line."""
    params = write(tmp_path, "p.json", CAP_PARAMS)
    result = write(tmp_path, "r.json", '{"payload":"b3V0"}')
    assert main(["response", "hash", "--method", CAP, "--params", params, "--result", result]) == 0
    assert capsys.readouterr().out == CAP_HASH.hex() + "\n"


@pytest.mark.parametrize(
    ("method", "params", "result", "text"),
    [
        (
            CAP,
            CAP_PARAMS.replace('"payload":"cGF5"', '"payload":""'),
            "{}",
            "invalid capability request params: payload is required",
        ),
        (SECRETS, '{"workflow_id":"w"}', "{}", "invalid secrets request params: owner is required"),
        (
            CAP,
            '{"workflow_id":1}',
            "{}",
            "json: cannot unmarshal number into Go struct field"
            " CapabilityRequestParams.workflow_id of type string",
        ),
        (CAP, CAP_PARAMS, '{"payload":', "unexpected end of JSON input"),
    ],
)
def test_response_hash_rejects_invalid_input_with_the_upstream_text(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    params: str,
    result: str,
    text: str,
) -> None:
    """Exit 1 with Validate's or Go's text on stderr and nothing on stdout."""
    argv = ["response", "hash", "--method", method]
    argv += [
        "--params",
        write(tmp_path, "p.json", params),
        "--result",
        write(tmp_path, "r", result),
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == text + "\n"


def test_response_hash_with_an_unreadable_file_or_missing_flag_is_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file is exit 2; a missing --result is argparse's exit 2."""
    params = write(tmp_path, "p.json", CAP_PARAMS)
    argv = ["response", "hash", "--method", CAP, "--params", params]
    assert main([*argv, "--result", str(tmp_path / "absent")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_response_sign_prints_go_json_signed_over_the_relay_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The signed result is Go's JSON; pycryptodome verifies its signature over the 10.4 bytes."""
    key = write(tmp_path, "node.key", SEED.hex() + "\n")
    argv = ["response", "sign", "--method", CAP, "--key", key]
    argv += ["--params", write(tmp_path, "p.json", CAP_PARAMS)]
    argv += ["--result", write(tmp_path, "r.json", '{"payload":"b3V0"}')]
    assert main(argv) == 0
    out = capsys.readouterr().out
    private = eddsa.import_private_key(SEED)
    payload = (
        b" " * 64
        + b"ragep2p arbitrary message signing\x00"
        + be64(27)
        + b"CONFIDENTIAL_RELAY_PAYLOAD_\x00"
        + be64(32)
        + CAP_HASH
    )
    sig = eddsa.new(private, "rfc8032").sign(payload)
    signer = private.public_key().export_key(format="raw")
    one = (
        '{"signer":"'
        + base64.b64encode(signer).decode()
        + '","signature":"'
        + base64.b64encode(sig).decode()
        + '"}'
    )
    assert (
        out == '{"result":{"payload":"b3V0"},"signatures":[' + one + '],"signature":' + one + "}\n"
    )
    assert SEED.hex() not in out


@pytest.mark.parametrize(
    ("content", "mode", "text"),
    [
        (SEED.hex(), 0o644, "is accessible by group or others (mode 0644)"),
        ("zz" * 32, 0o600, "does not hold a 32-byte seed as 64 hex digits"),
        (SEED.hex()[:-2], 0o600, "does not hold a 32-byte seed as 64 hex digits"),
    ],
)
def test_response_sign_refuses_an_unusable_key_file_as_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, mode: int, text: str
) -> None:
    """A key file others can read, or that is no 32-byte hex seed, is exit 2 and never echoed."""
    key = write(tmp_path, "node.key", content, mode)
    argv = ["response", "sign", "--method", CAP, "--key", key]
    argv += [
        "--params",
        write(tmp_path, "p.json", CAP_PARAMS),
        "--result",
        write(tmp_path, "r", "{}"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert text in err
    assert content not in err


def test_response_sign_rejects_params_validate_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validate failing at signing time is exit 1 with its text (a node answers -32603)."""
    key = write(tmp_path, "node.key", SEED.hex())
    params = write(tmp_path, "p.json", CAP_PARAMS.replace(OWNER, "0x1"))
    argv = ["response", "sign", "--method", CAP, "--key", key, "--params", params]
    assert main([*argv, "--result", write(tmp_path, "r", "{}")]) == 1
    assert capsys.readouterr().err == (
        "invalid capability request params: owner must be a 0x-prefixed 20-byte hex address\n"
    )


def test_the_console_script_reads_params_from_stdin(tmp_path: Path) -> None:
    """`relay response hash --params -` reads stdin, through the installed entry point."""
    relay = Path(sys.executable).with_name("relay")
    result = write(tmp_path, "r.json", '{"payload":"b3V0"}')
    done = subprocess.run(
        [str(relay), "response", "hash", "--method", CAP, "--params", "-", "--result", result],
        input=CAP_PARAMS.encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, CAP_HASH.hex().encode() + b"\n", b"")
