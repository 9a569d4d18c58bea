"""The enclave's pick from a bundle (PROTOCOL 10.6): only configured keys, distinct, F+1."""

from __future__ import annotations

import os

import msgspec
import pytest

from schemas import current, rpc
from workers.enclave import bundle
from workers.enclave.errors import AnswerError, NoQuorum
from workers.protocol import enclave_config, signed

KEYS = [signed.NodeKey(bytes([i + 1]) * 32) for i in range(4)]
CAP = rpc.MethodCapabilityExec
HONEST = rpc.CapabilityResponseResult(payload="aG9uZXN0")
OTHER = rpc.CapabilityResponseResult(payload="b3RoZXI=")


def params(
    f: int = 1, keys: list[signed.NodeKey] = KEYS, **changes: object
) -> current.CapabilityRequestParams:
    base = current.CapabilityRequestParams(
        workflow_id="wf",
        owner="0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B",
        execution_id="00" * 32,
        reference_id="1",
        capability_id="echo@1.0.0",
        payload="AA==",
        enclave_config=enclave_config.for_don([k.public_key for k in keys], f, b"mpk", 1),
    )
    return msgspec.structs.replace(base, **changes)


def entry(
    key: signed.NodeKey,
    result: rpc.CapabilityResponseResult = HONEST,
    p: current.CapabilityRequestParams | None = None,
) -> current.SignedCapabilityResponseResult:
    return signed.sign_capability(key, p or params(), result)


def test_f_plus_1_distinct_configured_signers_pick_their_result() -> None:
    """Two honest signers of four (F=1) win over one signer of another result."""
    chosen = bundle.select(CAP, params(), [entry(KEYS[0], OTHER), entry(KEYS[1]), entry(KEYS[2])])
    assert (chosen.result, chosen.signers, chosen.index) == (HONEST, 2, 1)
    assert chosen.hash == signed.response_hash(CAP, params(), HONEST)


def test_a_forged_entry_claiming_a_member_does_not_count_for_it() -> None:
    """An outside key claiming member 1's signer is invalid; one real signer is not F+1."""
    outsider = signed.NodeKey(os.urandom(32))
    forged = entry(outsider)
    claimed = msgspec.structs.replace(
        forged,
        signature=current.RelayResponseSignature(
            signer=KEYS[1].public_key, signature=forged.signature.signature
        ),
    )
    with pytest.raises(NoQuorum) as caught:
        bundle.select(CAP, params(), [entry(KEYS[0]), claimed])
    message = str(caught.value)
    assert message.startswith(
        "verifying capability response: no relay-DON result reached quorum: need 2 valid distinct"
        " signers (raw bundle 2, hashable 2, 1 valid signatures, 1 invalid, 1 distinct results,"
        " max 1 for any single result)"
    )
    assert "1: signature not from any allowed signer" in message


def test_the_same_signer_twice_counts_once() -> None:
    """Duplicates of one node's entry are one signer."""
    with pytest.raises(NoQuorum, match="max 1 for any single result"):
        bundle.select(CAP, params(), [entry(KEYS[0]), entry(KEYS[0]), entry(KEYS[0])])


def test_only_the_signature_field_is_read_never_the_deprecated_signatures() -> None:
    """A valid signature in `signatures` does not rescue a malformed `signature`."""
    good = entry(KEYS[1])
    broken = msgspec.structs.replace(
        good, signature=current.RelayResponseSignature(signer=None, signature=b"\x01" * 10)
    )
    with pytest.raises(NoQuorum, match="invalid signature length: expected 64 bytes, got 10"):
        bundle.select(CAP, params(), [entry(KEYS[0]), broken])


def test_a_signature_over_other_params_does_not_verify_for_ours() -> None:
    """Signed for another reference id: its hash is not ours, so it is invalid here."""
    elsewhere = entry(KEYS[1], p=params(reference_id="2"))
    with pytest.raises(NoQuorum):
        bundle.select(CAP, params(), [entry(KEYS[0]), elsewhere])


def test_the_most_signers_then_the_smallest_hash_win() -> None:
    """Two results with two signers each tie; the smaller hash wins. A result with three
    signers beats a result with two."""
    five = [*KEYS, signed.NodeKey(b"\x09" * 32)]
    p = params(keys=five)
    h_honest = signed.response_hash(CAP, p, HONEST)
    h_other = signed.response_hash(CAP, p, OTHER)
    smaller = HONEST if h_honest < h_other else OTHER
    pairs = [(five[0], OTHER), (five[1], OTHER), (five[2], HONEST), (five[3], HONEST)]
    tied = bundle.select(CAP, p, [entry(k, r, p) for k, r in pairs])
    assert (tied.result, tied.signers) == (smaller, 2)
    more = bundle.select(CAP, p, [entry(k, r, p) for k, r in [*pairs, (five[4], HONEST)]])
    assert (more.result, more.signers, more.index) == (HONEST, 3, 2)


def test_params_that_fail_validate_make_every_entry_unhashable() -> None:
    """A bad owner in our own params: nothing hashes, so nothing can be picked."""
    bad = params(owner="0XAB5801A7D398351B8BE11C439E05C5B3259AEC9B")
    with pytest.raises(NoQuorum, match="hashable 0"):
        bundle.select(CAP, bad, [entry(KEYS[0]), entry(KEYS[1])])


def test_without_signers_nothing_is_picked() -> None:
    """An enclave config without signers is `DON signer set not configured`."""
    empty = msgspec.structs.replace(
        params(), enclave_config=current.EnclaveConfig(signers=(), master_public_key=b"k", t=1, f=1)
    )
    with pytest.raises(AnswerError, match="DON signer set not configured"):
        bundle.select(CAP, empty, [entry(KEYS[0])])


def test_a_bundle_go_cannot_decode_fails_with_upstreams_prefix() -> None:
    """`unmarshalling capability response bundle: ...`."""
    with pytest.raises(AnswerError, match="unmarshalling capability response bundle: "):
        bundle.decode_bundle(CAP, b'{"responses":5}')
