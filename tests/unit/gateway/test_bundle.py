"""G3 bundling (PROTOCOL 10.10): how each node answer is classified and how the bundle reads."""

from __future__ import annotations

import json

import pytest

from schemas import rpc
from workers.gateway import bundle
from workers.gateway.envelope import decode_node_response

CAP = rpc.MethodCapabilityExec


def answer(**fields: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": "r", "method": CAP, **fields}).encode()


def classify(**fields: object) -> bundle.Entry:
    return bundle.classify(decode_node_response(answer(**fields)), CAP)


@pytest.mark.parametrize(
    ("fields", "sample"),
    [
        ({"error": {"code": -32603, "message": "  internal error \n"}}, "internal error"),
        ({"error": {"code": -32602, "message": "   "}}, "jsonrpc error code -32602"),
        ({"error": {"code": 1, "message": "é" * 150}}, "é" * 99 + ".."),
        ({}, "nil result"),
        ({"result": None}, "nil result"),
    ],
    ids=["trimmed", "empty", "long", "no-result", "null-result"],
)
def test_an_error_or_a_missing_result_is_an_error_with_upstreams_log_sample(
    fields: dict[str, object], sample: str
) -> None:
    """Trimmed; over 200 bytes cut to 199 plus `..`; empty and missing as upstream words them."""
    entry = classify(**fields)
    assert (entry.kind, entry.sample) == ("error", sample)


@pytest.mark.parametrize(
    "result",
    [[], "text", 5, {"result": {"payload": 5}}, {"signature": {"signature": "%%%"}}],
    ids=["array", "string", "number", "payload-not-string", "signature-not-base64"],
)
def test_a_result_go_cannot_decode_into_the_signed_type_is_undecodable(result: object) -> None:
    """Anything json.Unmarshal refuses for SignedCapabilityResponseResult is dropped."""
    assert classify(result=result).kind == "undecodable"


def test_any_object_that_decodes_counts_as_signed_even_an_unsigned_n1_result() -> None:
    """The gateway checks no signature: `{"payload":...}` counts as signed (the enclave rejects it)."""
    entry = classify(result={"payload": "aGk=", "unknown": 1})
    assert entry.kind == "signed"


def test_the_bundle_is_re_marshalled_as_go_writes_it() -> None:
    """Go key order, a missing signature written as nulls, an empty `signatures` dropped."""
    first = classify(result={"signatures": [], "result": {"payload": "aGk="}})
    second = classify(
        result={
            "signature": {"signature": "AQ==", "signer": "Ag=="},
            "signatures": [{"signer": "Ag==", "signature": "AQ=="}],
            "result": {"error": "boom"},
        }
    )
    assert first.signed is not None
    assert second.signed is not None
    body = bundle.forward_body("r-1", CAP, [first.signed, second.signed])
    assert body == (
        b'{"jsonrpc":"2.0","id":"r-1","method":"confidential.capability.execute","result":'
        b'{"responses":[{"result":{"payload":"aGk="},"signature":{"signer":null,"signature":null}},'
        b'{"result":{"error":"boom"},"signatures":[{"signer":"Ag==","signature":"AQ=="}],'
        b'"signature":{"signer":"Ag==","signature":"AQ=="}}]}}'
    )


def test_an_empty_bundle_is_an_empty_list_not_null() -> None:
    """The gateway always builds a non-nil slice: `{"responses":[]}`."""
    assert json.loads(bundle.forward_body("r", CAP, []))["result"] == {"responses": []}


def test_an_unknown_method_is_upstreams_fatal_text() -> None:
    """`unknown relay method: "<method>"`."""
    with pytest.raises(bundle.UnknownRelayMethod, match=r'unknown relay method: "x\.y"'):
        bundle.forward_body("r", "x.y", [])
