"""The naive baseline of `relay bench attest` gives correct verdicts (it is a yardstick, not a toy)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workers.attestation import AttestationError, MeasurementIndex, PcrSet, TrustRoots, Verifier
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.bench.docs import BenchDoc, load_docs
from workers.bench.naive import NaiveError, naive_verify

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nitro"
AWS_ROOT = TrustRoots.aws().ders[0]
REAL = load_docs(VECTORS)
NEGATIVE = sorted(
    p
    for p in VECTORS.glob("*.json")
    if not json.loads(p.read_text())["expected_to_verify_against_aws_root_g1"]
)


def test_every_real_document_is_accepted_at_its_time() -> None:
    """All sidecar-positive documents verify, with their PCRs matched against the trusted set."""
    assert len(REAL) >= 8
    for doc in REAL:
        result = naive_verify(doc.data, now=doc.at, root_der=AWS_ROOT, trusted=[doc.pcrs])
        meta = json.loads((VECTORS / f"{doc.name}.json").read_text())
        assert result.module_id == meta["module_id"]
        assert result.timestamp_ms == meta["timestamp_ms"]
        assert result.matched == doc.pcrs


@pytest.mark.parametrize("sidecar", NEGATIVE, ids=lambda p: p.stem)
def test_sidecar_negative_documents_are_rejected(sidecar: Path) -> None:
    """The corrupted document and the custom-root document are rejected against the AWS root."""
    meta = json.loads(sidecar.read_text())
    at = meta.get("verify_at_unix_s") or 1_767_400_000
    with pytest.raises(NaiveError):
        naive_verify((VECTORS / meta["file"]).read_bytes(), now=at, root_der=AWS_ROOT)


def _verdicts(doc: BenchDoc, data: bytes, at: float) -> tuple[bool, bool]:
    """(naive accepts, our verifier accepts) for one input."""
    try:
        naive_verify(data, now=at, root_der=AWS_ROOT, trusted=[doc.pcrs])
        naive_ok = True
    except NaiveError:
        naive_ok = False
    try:
        Verifier(TrustRoots.aws(), cache=False).verify(
            data, now=at, trusted=MeasurementIndex.from_sets([doc.pcrs])
        )
        ours_ok = True
    except AttestationError:
        ours_ok = False
    return naive_ok, ours_ok


def test_verdicts_agree_with_our_verifier_on_mutated_real_documents() -> None:
    """Flipped bytes, truncation, trailing bytes, wrong times and tag 18 get the library's verdict."""
    doc = next(d for d in REAL if d.name.startswith("base_"))
    day = 86_400.0
    cases: dict[str, tuple[bytes, float, bool]] = {
        "as is": (doc.data, doc.at, True),
        "wrapped in tag 18": (b"\xd2" + doc.data, doc.at, True),
        "signature byte flipped": (doc.data[:-1] + bytes([doc.data[-1] ^ 1]), doc.at, False),
        "truncated": (doc.data[:-10], doc.at, False),
        "trailing byte": (doc.data + b"\x00", doc.at, False),
        "one day later": (doc.data, doc.at + day, False),
        "one day earlier": (doc.data, doc.at - day, False),
    }
    for offset in range(200, len(doc.data) - 200, 397):  # payload bytes, certificates included
        flipped = bytearray(doc.data)
        flipped[offset] ^= 0x40
        cases[f"byte {offset} flipped"] = (bytes(flipped), doc.at, False)
    for label, (data, at, expected) in cases.items():
        assert _verdicts(doc, data, at) == (expected, expected), label


def test_a_document_is_rejected_when_no_trusted_set_matches() -> None:
    """PCR policy: a genuine document with foreign PCRs is refused, naming the reason."""
    doc = REAL[0]
    other = PcrSet(pcr0=b"\x01" * 48, pcr1=doc.pcrs.pcr1, pcr2=doc.pcrs.pcr2)
    with pytest.raises(NaiveError, match="no trusted set"):
        naive_verify(doc.data, now=doc.at, root_der=AWS_ROOT, trusted=[other])


def test_a_generated_chain_verifies_only_against_its_own_root() -> None:
    """A test-chain document passes with the test root and fails with the pinned AWS root."""
    chain = TestChain()
    document = chain.document()
    now = dt.datetime.now(dt.UTC).timestamp()
    result = naive_verify(document, now=now, root_der=chain.root_der, trusted=[chain.trusted()])
    assert result.pcrs[0] == fake_pcrs()[0]
    with pytest.raises(NaiveError, match="chain"):
        naive_verify(document, now=now, root_der=AWS_ROOT)


def test_a_p256_leaf_key_is_refused() -> None:
    """Nitro signs with P-384 only; a chain-valid P-256 leaf does not pass."""
    chain = TestChain()
    leaf_der, key = chain.leaf(curve=ec.SECP256R1())
    document = chain.sign(chain.payload(leaf_der=leaf_der), key=key)
    with pytest.raises(NaiveError):
        naive_verify(document, now=dt.datetime.now(dt.UTC).timestamp(), root_der=chain.root_der)


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00", b"\xff" * 64, b"\x84\x40\xa0\x40\x40", b"\xd9\xff\xff\x80"]
)
def test_garbage_is_rejected_with_a_typed_error(garbage: bytes) -> None:
    """Malformed bytes give NaiveError, never another exception."""
    with pytest.raises(NaiveError):
        naive_verify(garbage, now=1_700_000_000, root_der=AWS_ROOT)
