"""Workflow-DON authorization (PROTOCOL 10.8): the compute-request hash and the relay's rules.

The hash layouts, the 176-byte payload and the WorkflowExecution protobuf are written out by hand
here; the Workflow DON's signatures are made with pycryptodome's Ed25519, not the code under test.
"""

from __future__ import annotations

import hashlib
import struct

import msgspec
import pytest
from Crypto.Signature import eddsa

from schemas import current, rpc
from workers.protocol import compute_request as cr

OWNER = "0x" + "ab" * 20
SEEDS = [bytes([i]) * 32 for i in range(1, 6)]
KEYS = [eddsa.import_private_key(seed) for seed in SEEDS]
MEMBERS = [k.public_key().export_key(format="raw") for k in KEYS[:4]]  # F = 1
OUTSIDER = 4


def be64(n: int) -> bytes:
    return struct.pack(">Q", n)


def s(b: bytes) -> bytes:
    return be64(len(b)) + b


def pb_string(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field (tag, one-byte length: values here are short)."""
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def execution(workflow_id: str = "wf", owner: str = OWNER) -> bytes:
    return pb_string(1, workflow_id.encode()) + pb_string(5, owner.encode()) + pb_string(6, b"x")


def request(public_data: bytes | None = None, **changes: object) -> current.SignedComputeRequest:
    base = current.SignedComputeRequest(
        request_id=hashlib.sha256(b"exec-1").digest(),
        application_request_id="exec-1",
        public_data=execution() if public_data is None else public_data,
        ciphertexts=(b"c1", b"c2"),
        ciphertext_names=("B", "A"),
        encrypted_decryption_key_shares=((b"s",),),
        enclave_ephemeral_public_key=b"eph",
        master_public_key=None,
        app_id="confidential-workflows@1.0.0-alpha",
        version="0.0.6",
    )
    return msgspec.structs.replace(base, **changes)


def expected_hash(req: current.SignedComputeRequest, last: bytes) -> bytes:
    layout = (
        b"CONFIDENTIAL_COMPUTE_PAYLOAD"
        + b"\nComputeRequest\n"
        + req.request_id
        + s(req.public_data or b"")
        + be64(2)
        + s(b"B")
        + s(b"A")  # names in the given order, before the ciphertexts
        + be64(2)
        + s(b"c1")
        + s(b"c2")
        + s(b"eph")
        + s(b"")
        + s(b"confidential-workflows@1.0.0-alpha")
        + s(last)
    )
    return hashlib.sha256(layout).digest()


def payload(h: bytes) -> bytes:
    prefix = b"CONFIDENTIAL_COMPUTE_PAYLOAD_"
    return (
        b" " * 64
        + b"ragep2p arbitrary message signing\x00"
        + be64(29)
        + prefix
        + b"\x00"
        + be64(32)
        + h
    )


def signed_by(signer: int, req: current.SignedComputeRequest) -> current.SignedComputeRequest:
    h = expected_hash(req, req.version.encode() if req.version == "0.0.6" else b"exec-1")
    sig = eddsa.new(KEYS[signer], "rfc8032").sign(payload(h))
    return msgspec.structs.replace(req, signature=sig)


def params(
    *entries: current.SignedComputeRequest, **changes: object
) -> current.SecretsRequestParams:
    base = current.SecretsRequestParams(
        workflow_id="wf",
        owner=OWNER,
        execution_id="exec-1",
        secrets=(rpc.SecretIdentifier(key="A", namespace="main"),),
        enclave_public_key="aa",
        signed_compute_requests=entries or None,
    )
    return msgspec.structs.replace(base, **changes)


def test_compute_request_hash_of_the_legacy_version_ends_with_the_version() -> None:
    """Version 0.0.6 hashes str(version) last; signature and perNodeData are not hashed."""
    req = request(signature=b"x" * 64, per_node_data={"a": "b"})
    assert cr.compute_request_hash(req) == expected_hash(req, b"0.0.6")
    assert len(cr.compute_request_payload(b"\x00" * 32)) == 176


def test_compute_request_hash_of_other_versions_binds_the_application_request_id() -> None:
    """Any other version string (even v0.0.6) hashes applicationRequestID instead."""
    for version in ("0.0.7", "v0.0.6", ""):
        req = request(version=version)
        assert cr.compute_request_hash(req) == expected_hash(req, b"exec-1")


def test_compute_request_payload_is_laid_out_as_in_10_4() -> None:
    """The 29-byte prefix gives a 176-byte payload."""
    h = bytes(range(32))
    assert cr.compute_request_payload(h) == payload(h)


def test_f_plus_one_distinct_members_authorise_a_request() -> None:
    """Two of four members (F=1) suffice by default; the credited signers are reported."""
    req = request()
    done = cr.authorize(params(signed_by(2, req), signed_by(0, req)), MEMBERS, 1)
    assert done.signers == (MEMBERS[2], MEMBERS[0])
    assert done.threshold == 2
    assert done.signed_owner == OWNER
    assert done.compute_request_hash == expected_hash(req, b"0.0.6")


@pytest.mark.parametrize(
    ("signers", "bft", "text"),
    [
        ((0,), False, "insufficient Workflow DON signatures: 1 unique signers, need 2"),
        ((0, 0, 0), False, "insufficient Workflow DON signatures: 1 unique signers, need 2"),
        ((0, OUTSIDER), False, "insufficient Workflow DON signatures: 1 unique signers, need 2"),
        ((0, 1), True, "insufficient Workflow DON signatures: 2 unique signers, need 3"),
    ],
)
def test_too_few_distinct_member_signatures_are_refused(
    signers: tuple[int, ...], bft: bool, text: str
) -> None:
    """Duplicates count once, non-members are skipped, and a BFT quorum needs 2F+1."""
    req = request()
    entries = [signed_by(i, req) for i in signers]
    with pytest.raises(cr.AuthorizationError) as exc:
        cr.authorize(params(*entries), MEMBERS, 1, require_bft=bft)
    assert exc.value.message == text


def test_a_bft_quorum_is_met_by_2f_plus_one_members() -> None:
    """Three of four members satisfy 2F+1 for F=1; a bad signature among them is ignored."""
    req = request()
    forged = msgspec.structs.replace(req, signature=b"\x00" * 64)
    entries = (signed_by(0, req), forged, signed_by(3, req), signed_by(1, req))
    assert cr.authorize(params(*entries), MEMBERS, 1, require_bft=True).threshold == 3


def test_missing_and_mixed_compute_requests_are_refused() -> None:
    """No entries, or entries for two different compute requests, fail with their texts."""
    with pytest.raises(cr.AuthorizationError, match=r"^missing signed compute requests$"):
        cr.authorize(params(), MEMBERS, 1)
    other = request(application_request_id="exec-2", version="0.0.7")
    with pytest.raises(cr.AuthorizationError) as exc:
        cr.authorize(params(signed_by(0, request()), other), MEMBERS, 1)
    assert exc.value.message == (
        "forwarded signed compute requests do not share one compute request"
    )


@pytest.mark.parametrize(
    ("public_data", "text"),
    [
        (b"\x0a\x05wf", "proto: cannot parse invalid wire-format data"),
        (b"\x0a\x02\xff\xfe", "string field contains invalid UTF-8"),
        (b"\x42\x01\x0a", "proto: cannot parse invalid wire-format data"),
    ],
)
def test_public_data_that_go_cannot_unmarshal_is_refused_with_its_error(
    public_data: bytes, text: str
) -> None:
    """A truncated field, a non-UTF-8 string or a broken nested message carry Go's protobuf text."""
    req = request(public_data=public_data)
    with pytest.raises(cr.AuthorizationError) as exc:
        cr.authorize(params(signed_by(0, req), signed_by(1, req)), MEMBERS, 1)
    assert exc.value.message == f"failed to unmarshal workflow execution from public data: {text}"


@pytest.mark.parametrize(
    ("request_owner", "signed_owner", "workflow", "text"),
    [
        ("nothex", OWNER, "wf", "invalid owner address"),
        (OWNER, "", "wf", "invalid owner address"),
        (
            OWNER,
            "0x" + "cd" * 20,
            "wf",
            f'owner not authorized: request "{OWNER}" vs signed "0x{"cd" * 20}"',
        ),
        (OWNER, OWNER, "wf2", 'workflow_id not authorized: request "wf" vs signed "wf2"'),
        (OWNER, OWNER, 'w"f', 'workflow_id not authorized: request "wf" vs signed "w\\"f"'),
    ],
)
def test_owner_and_workflow_must_match_what_the_workflow_don_signed(
    request_owner: str, signed_owner: str, workflow: str, text: str
) -> None:
    """Owners must be hex addresses and equal as addresses; workflow ids equal exactly (%q)."""
    req = request(public_data=execution(workflow_id=workflow, owner=signed_owner))
    with pytest.raises(cr.AuthorizationError) as exc:
        cr.authorize(params(signed_by(0, req), signed_by(1, req), owner=request_owner), MEMBERS, 1)
    assert exc.value.message == text


def test_owners_compare_as_addresses_and_execution_id_is_not_compared() -> None:
    """A 0X prefix or other case still matches; the signed execution id plays no part."""
    signed_owner = "0X" + "AB" * 20
    req = request(public_data=execution(owner=signed_owner) + pb_string(6, b"another"))
    done = cr.authorize(
        params(signed_by(0, req), signed_by(1, req), execution_id="zzz"), MEMBERS, 1
    )
    assert done.signed_owner == signed_owner
