"""Real AWS Nitro documents (tests/vectors/nitro, provenance in each sidecar) get their sidecar's verdict."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from workers.attestation import (
    AWS_NITRO_ROOT_G1_SHA256,
    AttestationError,
    MeasurementIndex,
    PcrSet,
    TrustRoots,
    Verifier,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nitro"
SIDECARS = sorted(VECTORS.glob("*.json"))


def sidecar(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return data


def document(meta: dict[str, Any]) -> bytes:
    return (VECTORS / str(meta["file"])).read_bytes()


def pcr_set(meta: dict[str, Any]) -> PcrSet:
    return PcrSet(
        pcr0=bytes.fromhex(meta["pcr0"]),
        pcr1=bytes.fromhex(meta["pcr1"]),
        pcr2=bytes.fromhex(meta["pcr2"]),
    )


@pytest.fixture(scope="module")
def aws() -> Verifier:
    return Verifier(TrustRoots.aws())


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.stem)
def test_every_real_document_gets_its_sidecar_verdict(path: Path, aws: Verifier) -> None:
    """Verified at its own timestamp against the pinned AWS root, each doc passes or fails as recorded."""
    meta = json.loads(path.read_text())
    now = meta.get("verify_at_unix_s") or 1_700_000_000
    expected = meta["expected_to_verify_against_aws_root_g1"]
    if expected:
        doc = aws.verify(
            document(meta), now=now, trusted=MeasurementIndex.from_sets([pcr_set(meta)])
        )
        assert doc.module_id == meta["module_id"]
        assert doc.is_debug == meta["debug_mode_pcr012_zero"]
        assert len(doc.pcrs) == meta["pcr_count"]
    else:
        with pytest.raises(AttestationError):
            aws.verify(document(meta), now=now)


def test_the_pinned_root_has_the_published_fingerprint() -> None:
    """The embedded AWS root's DER hashes to 641a0321…bb5b (not the zip's 8cf60e…)."""
    assert AWS_NITRO_ROOT_G1_SHA256.startswith("641a0321")
    assert len(TrustRoots.aws().ders) == 1


def test_the_corrupt_base_document_is_rejected_as_malformed(aws: Verifier) -> None:
    """Three missing bytes inside a text string fail CBOR decoding, typed."""
    meta = sidecar("NEG_base_2026-01-03_corrupt_unrepaired")
    with pytest.raises(AttestationError) as exc:
        aws.verify(document(meta), now=meta.get("verify_at_unix_s") or 1_767_400_000)
    assert exc.value.reason == "malformed_cbor"


def test_the_marlin_mock_document_verifies_only_with_its_own_root(aws: Verifier) -> None:
    """A self-made chain fails against AWS and passes when its root is given as a dev root."""
    meta = sidecar("NEG_marlin_custom_root_2024-12-13")
    with pytest.raises(AttestationError) as exc:
        aws.verify(document(meta), now=meta["verify_at_unix_s"])
    assert exc.value.reason == "untrusted_root"
    root = (VECTORS / "NEG_marlin_custom_root.crt.der").read_bytes()
    dev = Verifier(TrustRoots.development(root))
    assert dev.verify(document(meta), now=meta["verify_at_unix_s"]).module_id == meta["module_id"]


def _leaf_window(meta: dict[str, Any]) -> tuple[int, int]:
    import cbor2

    payload = cbor2.loads(cbor2.loads(document(meta))[2])
    leaf = x509.load_der_x509_certificate(payload["certificate"])
    return (
        int(leaf.not_valid_before_utc.timestamp()),
        int(leaf.not_valid_after_utc.timestamp()),
    )


@pytest.mark.parametrize("cache", [True, False])
def test_the_leaf_validity_boundaries_hold_to_the_second(cache: bool) -> None:
    """One second before notBefore and after notAfter fail; the boundaries themselves pass."""
    meta = sidecar("base_2024-11-30")
    verifier = Verifier(TrustRoots.aws(), cache=cache)
    start, end = _leaf_window(meta)
    for now in (start, end):
        verifier.verify(document(meta), now=now)
    for now in (start - 1, end + 1):
        with pytest.raises(AttestationError) as exc:
            verifier.verify(document(meta), now=now)
        assert exc.value.reason == "cert_expired"


def test_a_warm_cache_still_rejects_an_expired_chain_later() -> None:
    """Caching a proven link never caches validity: the same doc fails a day later."""
    meta = sidecar("marlin_2024-12-13")
    verifier = Verifier(TrustRoots.aws())
    verifier.verify(document(meta), now=meta["verify_at_unix_s"])
    with pytest.raises(AttestationError):
        verifier.verify(document(meta), now=meta["verify_at_unix_s"] + 86_400)


def test_a_thousand_trusted_sets_match_the_same_as_one(aws: Verifier) -> None:
    """The PCR index finds the right set among 1,000 and rejects when it is absent."""
    meta = sidecar("base_2024-11-30")
    rng = random.Random(7)
    noise = [
        PcrSet(pcr0=rng.randbytes(48), pcr1=rng.randbytes(48), pcr2=rng.randbytes(48))
        for _ in range(999)
    ]
    big = MeasurementIndex.from_sets([*noise[:500], pcr_set(meta), *noise[500:]])
    assert aws.verify(document(meta), now=meta["verify_at_unix_s"], trusted=big).matched == pcr_set(
        meta
    )
    with pytest.raises(AttestationError) as exc:
        aws.verify(
            document(meta), now=meta["verify_at_unix_s"], trusted=MeasurementIndex.from_sets(noise)
        )
    assert exc.value.reason == "pcr_mismatch"
    assert "PCR0 mismatch: expected" in exc.value.message


def test_registry_trusted_values_parse_like_upstream() -> None:
    """JSON PCR objects decode hex of either case; bad ones are kept as upstream's error text."""
    meta = sidecar("base_2024-11-30")
    good = json.dumps(
        {"pcr0": meta["pcr0"].upper(), "pcr1": meta["pcr1"], "pcr2": meta["pcr2"], "pcr3": "zz"}
    ).encode()
    index = MeasurementIndex.from_json_values([b"not json", b'{"pcr0":"abc"}', good])
    assert len(index) == 1
    assert index.problems[0].startswith("failed to unmarshal trusted PCRs: ")
    assert "HexBytes: failed to decode hex string 'abc'" in index.problems[1]
    assert index.match(
        {
            0: bytes.fromhex(meta["pcr0"]),
            1: bytes.fromhex(meta["pcr1"]),
            2: bytes.fromhex(meta["pcr2"]),
        }
    )


def test_random_mutations_of_real_documents_only_ever_raise_attestation_errors(
    aws: Verifier,
) -> None:
    """2,000 byte flips, truncations and insertions: a typed verdict every time, never a crash."""
    rng = random.Random(20261123)
    metas = [json.loads(p.read_text()) for p in SIDECARS]
    outcomes = {"ok": 0, "rejected": 0}
    for i in range(2000):
        meta = metas[i % len(metas)]
        data = bytearray(document(meta))
        kind = i % 3
        pos = rng.randrange(len(data))
        if kind == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[pos:]
        else:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 4))
        try:
            aws.verify(bytes(data), now=meta.get("verify_at_unix_s") or 0)
            outcomes["ok"] += 1
        except AttestationError:
            outcomes["rejected"] += 1
    # A flip in the unprotected header or a high bit of a null field can survive; most cannot.
    assert outcomes["rejected"] > 1900


def test_random_bytes_only_ever_raise_attestation_errors(aws: Verifier) -> None:
    """Arbitrary bytes, including CBOR-looking prefixes, give a typed error."""
    rng = random.Random(5)
    prefixes = [b"", b"\x84", b"\xd2\x84", b"\x84\x44\xa1\x01\x38\x22\xa0", b"\xbf", b"\x9f"]
    for i in range(3000):
        blob = prefixes[i % len(prefixes)] + rng.randbytes(rng.randrange(0, 64))
        with pytest.raises(AttestationError):
            aws.verify(blob, now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
