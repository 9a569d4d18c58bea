"""The G0' quorum decision and the JCS digest (PROTOCOL 1.2 step 7, 6.5, 8.3, 8.5)."""

from __future__ import annotations

import hashlib
import random

import pytest

from workers.gateway import aggregator
from workers.gateway.aggregator import Collected, Insufficient, Quorum, QuorumUnobtainable
from workers.gateway.envelope import (
    DigestError,
    MalformedNodeResponse,
    NodeResponse,
    decode_node_response,
    digest,
)


def envelope_digest(raw: bytes) -> str:
    return digest(decode_node_response(raw))


def test_the_digest_matches_the_protocol_vector() -> None:
    """PROTOCOL 8.5: the req-quorum envelope digests to 94a4f04a...aa9a."""
    raw = (
        b'{"jsonrpc":"2.0","id":"req-quorum","method":"confidential.capability.execute",'
        b'"result":{"payload":"result"}}'
    )
    assert envelope_digest(raw) == (
        "94a4f04a6c583fba12fb29e0cac3276a957fa2dd0b57b5fb649b9c1342a6aa9a"
    )


def test_the_digest_is_over_the_canonical_form_of_the_envelope() -> None:
    """The digest is SHA-256 of the sorted-key, compact JSON of the envelope."""
    raw = b'{"jsonrpc":"2.0","id":"i","method":"m","result":[1, {"z":true,"a":null}]}'
    canonical = b'{"id":"i","jsonrpc":"2.0","method":"m","result":[1,{"a":null,"z":true}]}'
    assert envelope_digest(raw) == hashlib.sha256(canonical).hexdigest()


def test_key_order_whitespace_and_unknown_keys_do_not_change_the_digest() -> None:
    """Two encodings of the same envelope agree; an extra top-level key is not part of it."""
    a = b'{"jsonrpc":"2.0","id":"i","method":"m","result":{"x":1,"y":[2,3]}}'
    b = b'{ "extra": 1, "result": {"y": [2, 3], "x": 1.0}, "method": "m", "id": "i", "jsonrpc": "2.0" }'
    assert envelope_digest(a) == envelope_digest(b)


@pytest.mark.parametrize(
    "other",
    [
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32603,"message":"internal error."}}',
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32602,"message":"internal error"}}',
        b'{"jsonrpc":"2.0","id":"i","method":"other","error":{"code":-32603,"message":"internal error"}}',
        b'{"jsonrpc":"2.0","id":"j","method":"m","error":{"code":-32603,"message":"internal error"}}',
    ],
)
def test_any_content_difference_changes_the_digest(other: bytes) -> None:
    """Error text, code, method and id are all part of what nodes must agree on."""
    base = b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32603,"message":"internal error"}}'
    assert envelope_digest(base) != envelope_digest(other)


def test_a_null_result_or_error_data_counts_as_absent() -> None:
    """Upstream decodes them into pointers, so `null` and a missing key digest alike."""
    assert envelope_digest(b'{"id":"i","result":null}') == envelope_digest(b'{"id":"i"}')
    assert envelope_digest(
        b'{"id":"i","error":{"code":1,"message":"m","data":null}}'
    ) == envelope_digest(b'{"id":"i","error":{"code":1,"message":"m"}}')


def test_numbers_are_canonicalised_as_float64_like_go() -> None:
    """A 20-digit integer canonicalises as its float64 value instead of failing."""
    big = b'{"id":"i","result":12345678901234567890}'
    assert envelope_digest(big) == envelope_digest(b'{"id":"i","result":12345678901234567000}')


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"i","result":{"payload":"forged","payload":"result"}}',
        b'{"id":"i","result":{"a":{"b":1,"b":1}}}',
        b'{"id":"i","error":{"code":-32603,"message":"m","data":{"x":1,"x":2}}}',
    ],
)
def test_a_repeated_member_name_has_no_digest(raw: bytes) -> None:
    """RFC 8785 needs I-JSON: duplicate names never vote (else a forged first one rides along)."""
    with pytest.raises(DigestError, match="repeated"):
        envelope_digest(raw)


def test_an_error_code_past_2_to_the_53_canonicalises_as_a_float64() -> None:
    """Go's JCS reads the code as a float64 too, so a huge code still has a digest."""
    small = envelope_digest(b'{"id":"i","error":{"code":-32603,"message":"m"}}')
    huge = envelope_digest(b'{"id":"i","error":{"code":12345678901234567890,"message":"m"}}')
    assert small != huge
    assert small == envelope_digest(b'{"id":"i","error":{"code":-32603,"message":"m"}}')


def test_a_number_beyond_float64_has_no_digest() -> None:
    """1e400 cannot be canonicalised: DigestError, which the aggregator skips."""
    with pytest.raises(DigestError, match="canonicalise"):
        envelope_digest(b'{"id":"i","result":1e400}')


def test_a_lone_surrogate_escape_is_refused_as_malformed() -> None:
    """`\\ud800` makes the node message malformed (stricter than Go, see envelope)."""
    with pytest.raises(MalformedNodeResponse, match="not a JSON-RPC response"):
        decode_node_response(b'{"id":"i","result":"a\\ud800"}')


def test_a_result_nested_past_msgspecs_limit_is_refused_as_malformed() -> None:
    """Two thousand levels of nesting make the node message malformed, never a crash."""
    nested = b"[" * 2000 + b"]" * 2000
    with pytest.raises(MalformedNodeResponse, match="nested too deeply"):
        decode_node_response(b'{"id":"i","result":%s}' % nested)


def test_fewer_responses_than_quorum_are_insufficient() -> None:
    """One response with F=1 keeps waiting."""
    assert aggregator.aggregate({"n0": Collected("d1")}, f=1, expected=4) == Insufficient(1)


def test_responses_without_a_digest_count_as_collected_but_never_vote() -> None:
    """Two undigestable responses of three: the third node alone cannot reach F+1=2... yet."""
    responses = {"n0": Collected(None), "n1": Collected(None), "n2": Collected("d")}
    assert aggregator.aggregate(responses, f=1, expected=4) == Insufficient(3)
    with pytest.raises(QuorumUnobtainable, match="maxShaToCount=1, remainingResponses=0"):
        aggregator.aggregate({**responses, "n3": Collected(None)}, f=1, expected=4)


def test_the_unobtainable_message_has_the_spec_shape() -> None:
    """The error text carries Q, the best count and the responses still possible."""
    with pytest.raises(QuorumUnobtainable) as info:
        aggregator.aggregate(
            {"a": Collected("1"), "b": Collected("2"), "c": Collected("3")}, f=2, expected=4
        )
    assert str(info.value) == (
        "quorum unobtainable: requiredQuorum=3, maxShaToCount=1, remainingResponses=1"
    )
    assert (info.value.required, info.value.max_count, info.value.remaining) == (3, 1, 1)


def test_a_tie_goes_to_the_smallest_digest_and_the_first_node_in_address_order() -> None:
    """6.5: two `aaa` and two `zzz` nodes, 300 shuffled runs: always the smaller digest."""
    responses = {
        "0x0000": b'{"jsonrpc":"2.0","id":"t","method":"m","result":{"payload":"aaa"}}',
        "0x0001": b'{"jsonrpc":"2.0","id":"t","method":"m","result":{"payload":"zzz"}}',
        "0x0002": b'{"jsonrpc":"2.0","id":"t","method":"m","result":{"payload":"aaa"}}',
        "0x0003": b'{"jsonrpc":"2.0","id":"t","method":"m","result":{"payload":"zzz"}}',
    }
    digests = {node: envelope_digest(raw) for node, raw in responses.items()}
    smallest = min(digests.values())
    first_node = min(node for node, d in digests.items() if d == smallest)
    rng = random.Random(7)
    nodes = list(responses)
    for _ in range(300):
        rng.shuffle(nodes)
        collected = {node: Collected(digests[node]) for node in nodes}
        decision = aggregator.aggregate(collected, f=1, expected=4)
        assert decision == Quorum(digest=smallest, node=first_node, count=2)


def test_node_response_defaults_match_a_go_zero_value() -> None:
    """Missing keys decode to empty strings and no error, as Go's zero values."""
    resp = decode_node_response(b"{}")
    assert resp == NodeResponse()
    assert resp.error is None
