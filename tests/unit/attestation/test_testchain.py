"""Generated documents (workers.attestation.testchain, our own five-level chain) and their mutations."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workers.attestation import AttestationError, MeasurementIndex, PcrSet, TrustRoots, Verifier
from workers.attestation.testchain import TestChain, fake_pcrs, make_certificate
from workers.protocol.binding import domain_hash

USER_DATA = domain_hash("ConfidentialSecretsGet", b'{"key":"value"}')


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="module")
def verifier(chain: TestChain) -> Verifier:
    return Verifier(TrustRoots.development(chain.root_pem))


@pytest.fixture(scope="module")
def trusted(chain: TestChain) -> MeasurementIndex:
    return MeasurementIndex.from_sets([chain.trusted()])


def now() -> float:
    return time.time()


@pytest.mark.parametrize(
    "variant", [{}, {"indefinite": True}], ids=["definite-map", "indefinite-map"]
)
def test_generated_documents_round_trip_in_every_encoding(
    chain: TestChain, verifier: Verifier, trusted: MeasurementIndex, variant: dict[str, bool]
) -> None:
    """The fake attestor's round trip: user data echoed, SHA384, 3 PCRs of 48 bytes, PCRs matched."""
    doc = verifier.verify(
        chain.document(user_data=USER_DATA, **variant),
        now=now(),
        expected_user_data=USER_DATA,
        trusted=trusted,
    )
    assert doc.user_data == USER_DATA
    assert doc.digest == "SHA384"
    assert [len(v) for v in doc.pcrs.values()] == [48, 48, 48]
    assert doc.matched == chain.trusted()


def test_a_tag_18_document_verifies(chain: TestChain, verifier: Verifier) -> None:
    """COSE_Sign1 wrapped in tag 18 is accepted; the tag is not part of the signed bytes."""
    tagged = chain.sign(chain.payload(user_data=USER_DATA), tag18=True)
    assert tagged[0] == 0xD2
    assert verifier.verify(tagged, now=now()).user_data == USER_DATA


def test_generated_documents_fail_against_the_aws_root(chain: TestChain) -> None:
    """A test chain is never trusted by the production verifier."""
    with pytest.raises(AttestationError) as exc:
        Verifier(TrustRoots.aws()).verify(chain.document(), now=now())
    assert exc.value.reason == "untrusted_root"


def test_wrong_user_data_is_rejected_with_upstreams_words(
    chain: TestChain, verifier: Verifier
) -> None:
    """A document bound to other params: `expected user data <hex>, got <hex>`."""
    other = domain_hash("ConfidentialCapabilityExecute", b'{"key":"value"}')
    with pytest.raises(AttestationError) as exc:
        verifier.verify(chain.document(user_data=other), now=now(), expected_user_data=USER_DATA)
    assert exc.value.reason == "user_data_mismatch"
    assert exc.value.message == f"expected user data {USER_DATA.hex()}, got {other.hex()}"


def test_wrong_pcrs_are_rejected_with_pcr0_mismatch(chain: TestChain, verifier: Verifier) -> None:
    """Trusted set {aa, bb, cc} against fake PCRs: `PCR0 mismatch`."""
    index = MeasurementIndex.from_json_values([b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'])
    with pytest.raises(AttestationError) as exc:
        verifier.verify(chain.document(), now=now(), trusted=index)
    assert "PCR0 mismatch" in exc.value.message


@pytest.mark.parametrize("offset_s", [-360, 360])
def test_documents_six_minutes_off_are_stale_with_a_five_minute_window(
    chain: TestChain, verifier: Verifier, offset_s: int
) -> None:
    """Freshness holds both ways: 6 min old and 6 min in the future are both rejected."""
    stamp = int((now() - offset_s) * 1000)
    doc = chain.document(timestamp_ms=stamp)
    verifier.verify(doc, now=now(), max_age_s=None)
    with pytest.raises(AttestationError) as exc:
        verifier.verify(doc, now=now(), max_age_s=300)
    assert exc.value.reason == "stale"


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP521R1()], ids=["P-256", "P-521"])
def test_leaves_on_other_curves_are_rejected(
    chain: TestChain, verifier: Verifier, curve: ec.EllipticCurve
) -> None:
    """P-384 only: a P-256 or P-521 leaf fails even with a valid signature."""
    leaf_der, key = chain.leaf(curve=curve)
    doc = chain.sign(chain.payload(leaf_der=leaf_der), key=key)
    with pytest.raises(AttestationError):
        verifier.verify(doc, now=now())


def _flip_signature(chain: TestChain) -> bytes:
    cose = cbor2.loads(chain.document())
    sig = bytearray(cose[3])
    sig[10] ^= 1
    cose[3] = bytes(sig)
    return cbor2.dumps(cose)


def _flip_payload(chain: TestChain) -> bytes:
    cose = cbor2.loads(chain.document())
    payload = bytearray(cose[2])
    payload[payload.index(b"i-0test") + 3] ^= 1
    cose[2] = bytes(payload)
    return cbor2.dumps(cose)


def _expired_leaf(chain: TestChain) -> bytes:
    leaf_der, key = chain.leaf(
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(hours=5),
        lifetime=dt.timedelta(hours=3, seconds=3),
    )
    return chain.sign(chain.payload(leaf_der=leaf_der), key=key)


def _missing_cabundle_entry(chain: TestChain) -> bytes:
    bundle = list(chain.cabundle)
    del bundle[2]
    return chain.document(cabundle=bundle)


def _duplicate_key(chain: TestChain) -> bytes:
    payload = chain.payload()
    # Re-append "digest": "SHA384" inside the definite map and bump its size by one.
    assert payload[0] == 0xA9
    extra = cbor2.dumps("digest") + cbor2.dumps("SHA384")
    return chain.sign(b"\xaa" + payload[1:] + extra)


def _trailing_bytes(chain: TestChain) -> bytes:
    return chain.document() + b"\x00"


def _der_signature(chain: TestChain) -> bytes:
    from cryptography.hazmat.primitives import hashes

    from workers.attestation.document import signature_structure

    payload = chain.payload()
    protected = b"\xa1\x01\x38\x22"
    der = chain.leaf()[1].sign(signature_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    return cbor2.dumps([protected, {}, payload, der])


def _alg_es256(chain: TestChain) -> bytes:
    return chain.sign(chain.payload(), protected=cbor2.dumps({1: -7}))


def _pcr_of_wrong_length(chain: TestChain) -> bytes:
    pcrs = fake_pcrs()
    pcrs[3] = b"\x00" * 20
    return chain.document(pcrs=pcrs)


def _oversized_user_data(chain: TestChain) -> bytes:
    return chain.document(user_data=b"u" * 513)


def _other_tag(chain: TestChain) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(98, cbor2.loads(chain.document())))


def _wrong_root(chain: TestChain) -> bytes:
    other = TestChain()
    return other.document()


def _tampered_protected_header(chain: TestChain) -> bytes:
    cose = cbor2.loads(chain.document())
    cose[0] = cbor2.dumps({1: -35, 4: b"kid"})
    return cbor2.dumps(cose)


MUTATIONS: dict[str, tuple[Callable[[TestChain], bytes], str]] = {
    "flipped signature byte": (_flip_signature, "signature_invalid"),
    "flipped payload byte": (_flip_payload, "signature_invalid"),
    "expired leaf": (_expired_leaf, "cert_expired"),
    "wrong root": (_wrong_root, "untrusted_root"),
    "missing cabundle entry": (_missing_cabundle_entry, "chain_invalid"),
    "duplicate payload key": (_duplicate_key, "malformed_cbor"),
    "trailing bytes": (_trailing_bytes, "trailing_bytes"),
    "DER signature": (_der_signature, "bad_signature_encoding"),
    "alg ES256": (_alg_es256, "bad_algorithm"),
    "PCR of a wrong length": (_pcr_of_wrong_length, "bad_pcrs"),
    "oversized user_data": (_oversized_user_data, "bad_field"),
    "other CBOR tag": (_other_tag, "bad_tag"),
    "tampered protected header": (_tampered_protected_header, "signature_invalid"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutation_is_rejected_with_its_reason(
    chain: TestChain, verifier: Verifier, name: str
) -> None:
    """Every negative vector fails with a stable, specific reason code."""
    mutate, reason = MUTATIONS[name]
    with pytest.raises(AttestationError) as exc:
        verifier.verify(mutate(chain), now=now())
    assert exc.value.reason == reason, exc.value.message


def test_trusted_values_json_is_the_registry_form(chain: TestChain) -> None:
    """trusted_values_json gives the {pcr0,pcr1,pcr2} object the registry stores."""
    index = MeasurementIndex.from_json_values([chain.trusted_values_json()])
    assert index.match(fake_pcrs()) == PcrSet(
        pcr0=hashlib.sha384(b"fake-pcr-0").digest(),
        pcr1=hashlib.sha384(b"fake-pcr-1").digest(),
        pcr2=hashlib.sha384(b"fake-pcr-2").digest(),
    )


def test_an_extra_certificate_named_like_the_root_is_rejected_and_never_cached(
    chain: TestChain, verifier: Verifier
) -> None:
    """A bundle the path builder could shortcut (an impostor named like the root) is rejected twice."""
    impostor = make_certificate(
        str(chain.certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value),
        ec.generate_private_key(ec.SECP384R1()),
        None,
        not_before=chain.valid_from,
        not_after=chain.certs[0].not_valid_after_utc,
        ca=True,
        path_length=None,
        digital_signature=True,
    ).public_bytes(serialization.Encoding.DER)
    doc = chain.document(cabundle=[chain.cabundle[0], impostor, *chain.cabundle[1:]])
    for _ in range(2):
        with pytest.raises(AttestationError) as exc:
            verifier.verify(doc, now=now())
        assert exc.value.reason == "chain_invalid"


def test_the_same_document_twice_with_the_cache_gives_the_same_verdict(chain: TestChain) -> None:
    """A fresh verifier and its warm second call agree, for a valid and for a rejected document."""
    verifier = Verifier(TrustRoots.development(chain.root_pem))
    good = chain.document(user_data=USER_DATA)
    first, second = (verifier.verify(good, now=now()) for _ in range(2))
    assert first == second
    bad = _flip_signature(chain)
    reasons = []
    for _ in range(2):
        with pytest.raises(AttestationError) as exc:
            verifier.verify(bad, now=now())
        reasons.append(exc.value.reason)
    assert reasons == ["signature_invalid", "signature_invalid"]


def test_a_chain_minted_for_a_fixed_window_verifies_only_inside_it() -> None:
    """A TestChain starting 2030-01-01 gives a document valid from then for the leaf's 3 h 3 s."""
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    fixed = TestChain(valid_from=start)
    doc = fixed.document(timestamp_ms=int(start.timestamp() * 1000) + 60_000)
    verifier = Verifier(TrustRoots.development(fixed.root_pem), cache=False)
    t0 = start.timestamp()
    assert verifier.verify(doc, now=t0 + 60, max_age_s=300).timestamp_ms == t0 * 1000 + 60_000
    for outside in (t0 - 1, t0 + 3 * 3600 + 3 + 1):
        with pytest.raises(AttestationError) as exc:
            verifier.verify(doc, now=outside)
        assert exc.value.reason == "cert_expired"


@pytest.mark.parametrize("bad_now", [float("nan"), float("inf")])
def test_a_non_finite_time_is_a_caller_error_not_a_verdict(
    chain: TestChain, verifier: Verifier, bad_now: float
) -> None:
    """`now` must be a real instant: NaN or infinity raises ValueError before any check."""
    with pytest.raises(ValueError, match="finite"):
        verifier.verify(chain.document(), now=bad_now)


def _shared_dag(levels: int, width: int) -> bytes:
    """CBOR value sharing (tags 28/29): each level holds the previous one `width` times by
    reference, so a few hundred bytes stand for width**levels elements."""

    def head(major: int, n: int) -> bytes:
        return bytes([major << 5 | n]) if n < 24 else bytes([major << 5 | 24, n])

    def build(j: int) -> bytes:
        if j == 0:
            return b"\xd8\x1c" + head(4, 1) + cbor2.dumps("a")
        refs = (b"\xd8\x1d" + cbor2.dumps(levels - (j - 1))) * (width - 1)
        return b"\xd8\x1c" + head(4, width) + build(j - 1) + refs

    return build(levels)


def test_a_value_sharing_bomb_is_refused_at_once_before_any_signature_check(
    verifier: Verifier,
) -> None:
    """A 2 KB unsigned document whose map key shares itself 100 x 100 x ... times: refused in
    milliseconds (cbor2 would expand and hash it for hours)."""
    unprotected = b"\xa1" + _shared_dag(6, 100) + b"\x00"
    document = b"\x84" + cbor2.dumps(b"\xa1\x01\x38\x22") + unprotected
    document += cbor2.dumps(b"\xa0") + cbor2.dumps(b"\0" * 96)
    assert len(document) < 2048
    started = time.monotonic()
    with pytest.raises(AttestationError) as rejected:
        verifier.verify(document, now=time.time())
    assert rejected.value.reason == "malformed_cbor"
    assert "tag 28" in rejected.value.message
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("tag", [0, 1, 2, 3, 25, 28, 29, 30, 256, 258, 55799])
def test_no_tag_that_cbor2_would_interpret_is_decoded_inside_a_document(
    chain: TestChain, verifier: Verifier, tag: int
) -> None:
    """Dates, bignums, shared values, string references, sets, self-describe: all refused."""
    document = cbor2.dumps(cbor2.CBORTag(tag, chain.document()))
    with pytest.raises(AttestationError) as rejected:
        verifier.verify(document, now=time.time())
    assert rejected.value.reason == "malformed_cbor"
