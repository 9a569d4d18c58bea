"""`relay compute-request hash|authorize` and `relay attest domain-hash`, through main()."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from Crypto.Signature import eddsa

from workers.cli import main

OWNER = "0x" + "ab" * 20
KEYS = [eddsa.import_private_key(bytes([i]) * 32) for i in range(1, 5)]
MEMBERS = [k.public_key().export_key(format="raw") for k in KEYS]
REQUEST_ID = hashlib.sha256(b"exec-1").digest()


def be64(n: int) -> bytes:
    return struct.pack(">Q", n)


def s(b: bytes) -> bytes:
    return be64(len(b)) + b


PUBLIC_DATA = b"\x0a\x02wf" + b"\x2a\x2a" + OWNER.encode()  # WorkflowExecution{1: wf, 5: owner}
H_CR = hashlib.sha256(
    b"CONFIDENTIAL_COMPUTE_PAYLOAD\nComputeRequest\n"
    + REQUEST_ID
    + s(PUBLIC_DATA)
    + be64(1)
    + s(b"K")
    + be64(1)
    + s(b"ct")
    + s(b"")
    + s(b"")
    + s(b"confidential-workflows@1.0.0-alpha")
    + s(b"0.0.6")
).digest()
PAYLOAD = (
    b" " * 64
    + b"ragep2p arbitrary message signing\x00"
    + be64(29)
    + b"CONFIDENTIAL_COMPUTE_PAYLOAD_\x00"
    + be64(32)
    + H_CR
)


def entry(signer: int | None) -> dict[str, object]:
    sig = None if signer is None else eddsa.new(KEYS[signer], "rfc8032").sign(PAYLOAD)
    return {
        "requestID": list(REQUEST_ID),
        "applicationRequestID": "exec-1",
        "publicData": base64.b64encode(PUBLIC_DATA).decode(),
        "ciphertexts": [base64.b64encode(b"ct").decode()],
        "CiphertextNames": ["K"],
        "encryptedDecryptionKeyShares": None,
        "enclaveEphemeralPublicKey": None,
        "masterPublicKey": None,
        "appID": "confidential-workflows@1.0.0-alpha",
        "version": "0.0.6",
        "signature": None if sig is None else base64.b64encode(sig).decode(),
    }


def write(tmp_path: Path, name: str, data: str) -> str:
    path = tmp_path / name
    path.write_text(data)
    return str(path)


def params(*signers: int, workflow_id: str = "wf") -> str:
    return json.dumps(
        {
            "workflow_id": workflow_id,
            "owner": OWNER,
            "execution_id": "exec-1",
            "secrets": [{"key": "K", "namespace": "main"}],
            "enclave_public_key": "aa",
            "signed_compute_requests": [entry(i) for i in signers],
        }
    )


def members_file(tmp_path: Path) -> str:
    lines = ["# the Workflow DON, registry order", *(m.hex() for m in MEMBERS), ""]
    return write(tmp_path, "members.txt", "\n".join(lines))


def test_compute_request_hash_prints_the_10_8_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 with H_cr in hex; the signature does not change it."""
    assert main(["compute-request", "hash", write(tmp_path, "a", json.dumps(entry(0)))]) == 0
    assert main(["compute-request", "hash", write(tmp_path, "b", json.dumps(entry(None)))]) == 0
    assert capsys.readouterr().out == f"{H_CR.hex()}\n{H_CR.hex()}\n"


def test_compute_request_hash_rejects_bad_json_and_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Go's decode error is exit 1; a file that cannot be read is exit 2."""
    assert main(["compute-request", "hash", write(tmp_path, "a", '{"requestID":"AA=="}')]) == 1
    assert capsys.readouterr().err == (
        "json: cannot unmarshal string into Go struct field SignedComputeRequest.requestID"
        " of type [32]uint8\n"
    )
    assert main(["compute-request", "hash", str(tmp_path / "absent")]) == 2


def test_authorize_accepts_f_plus_one_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two member signatures authorise for F=1: exit 0 and a summary line."""
    argv = ["compute-request", "authorize", "--params", write(tmp_path, "p", params(3, 1))]
    assert main([*argv, "--don-f", "1", "--members", members_file(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"authorized: 2 unique signers, need 2; compute request {H_CR.hex()}\n"
    )


@pytest.mark.parametrize(
    ("signers", "extra", "workflow_id", "text"),
    [
        ((0, 1), ["--bft"], "wf", "insufficient Workflow DON signatures: 2 unique signers, need 3"),
        ((0, 0), [], "wf", "insufficient Workflow DON signatures: 1 unique signers, need 2"),
        ((), [], "wf", "missing signed compute requests"),
        ((0, 1), [], "other", 'workflow_id not authorized: request "other" vs signed "wf"'),
    ],
)
def test_authorize_rejects_with_the_relays_texts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    signers: tuple[int, ...],
    extra: list[str],
    workflow_id: str,
    text: str,
) -> None:
    """Exit 1 with the -32602 text on stderr."""
    p = write(tmp_path, "p", params(*signers, workflow_id=workflow_id))
    argv = ["compute-request", "authorize", "--params", p, "--don-f", "1"]
    assert main([*argv, "--members", members_file(tmp_path), *extra]) == 1
    assert capsys.readouterr().err == text + "\n"


def test_authorize_refuses_a_bad_member_list_or_f_as_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member that is not a 32-byte hex key is exit 2 naming the line; F below 0 too."""
    bad = write(tmp_path, "m", MEMBERS[0].hex() + "\n" + "abcd\n")
    argv = ["compute-request", "authorize", "--params", write(tmp_path, "p", params(0, 1))]
    assert main([*argv, "--don-f", "1", "--members", bad]) == 2
    assert "line 2: not a 32-byte public key in hex" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--don-f", "-1", "--members", members_file(tmp_path)])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("version", "digest"),
    [
        ("v1", "0c2319f5e85f70ef309882b2df6baf63d55eec82a7b9f4c3224b8fa461cfba4d"),
        ("v2", "69b25f1b84c24423ed0d99b4bc2c5669232fc70b4fa94f302f452b8d7e526a62"),
    ],
)
def test_attest_domain_hash_reproduces_the_8_5_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, digest: str
) -> None:
    """DomainHash of raw file bytes, v1 and v2, as the protocol's vectors."""
    data = write(tmp_path, "d", '{"key":"value"}')
    assert (
        main(
            ["attest", "domain-hash", "--tag", "TestTag", "--data", data, "--domain-hash", version]
        )
        == 0
    )
    assert capsys.readouterr().out == digest + "\n"


def test_attest_domain_hash_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable file or a missing --domain-hash is exit 2."""
    absent = str(tmp_path / "absent")
    assert (
        main(["attest", "domain-hash", "--tag", "T", "--data", absent, "--domain-hash", "v2"]) == 2
    )
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["attest", "domain-hash", "--tag", "T", "--data", absent])
    assert exc.value.code == 2


def test_attest_hash_binds_current_params_with_protocol_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--protocol current keeps enclave_config in the hashed JSON, which n1 drops."""
    sent = '{"workflow_id":"w","enclave_config":{"f":1},"attestation":"x"}'
    path = write(tmp_path, "p", sent)
    argv = ["attest", "hash", "--method", "confidential.capability.execute", "--params", path]
    assert main([*argv, "--protocol", "current", "--show-json"]) == 0  # v2 by default
    digest, hashed = capsys.readouterr().out.splitlines()
    assert hashed == (
        '{"workflow_id":"w","owner":"","execution_id":"","reference_id":"","capability_id":"",'
        '"payload":"","enclave_config":{"signers":null,"master_public_key":null,"t":0,"f":1}}'
    )
    tag = b"ConfidentialCapabilityExecute"
    data = hashed.encode()
    want = hashlib.sha256(
        b"CONFIDENTIAL_COMPUTE_PAYLOAD" + s(tag) + be64(len(data)) + data
    ).hexdigest()
    assert digest == want
