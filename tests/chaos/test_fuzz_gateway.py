"""Property-based fuzzing of the gateway's HTTP front (`relay gateway` in front of the chaos node).

Every POST gets one JSON-RPC answer: either the node's answer forwarded (HTTP 200, the node's
codes, exactly PROTOCOL 2.5's for a well-formed envelope) or the gateway's own error with the
HTTP status PROTOCOL 2.6's table gives its code and `"data":null`. The gateway stays up.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from schemas import rpc
from tests.chaos import fuzzing
from tests.chaos.cluster import Portal
from tests.chaos.fuzzing import (
    Pairs,
    bounded,
    dump_pairs,
    envelopes,
    expected_answer,
    params_envelopes,
)
from tests.chaos.gatewayproc import GatewayRunner

GATEWAY_STATUS = {
    rpc.ErrParse: 400,
    rpc.ErrInvalidRequest: 400,
    rpc.ErrInvalidParams: 400,
    rpc.ErrMethodNotFound: 400,
    rpc.ErrServerOverloaded: 504,
    rpc.ErrInternal: 500,
    rpc.ErrLimitExceeded: 429,
    rpc.ErrConflict: 409,
}
"""PROTOCOL 2.6: the HTTP status of each JSON-RPC code the gateway builds itself."""


async def post(url: str, raw: bytes) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, timeout=aiohttp.ClientTimeout(total=20)) as resp,
    ):
        return resp.status, await resp.read()


def check(status: int, data: bytes, expected: fuzzing.Expected | None) -> dict[str, Any]:
    """One answer: a forwarded node answer (200) or a gateway error with 2.6's status."""
    body: dict[str, Any] = json.loads(data)
    if status == 200:
        return fuzzing.check_response(data, expected)
    error = body["error"]
    assert body["jsonrpc"] == "2.0", data[:300]
    assert "data" in error, data[:300]
    assert error["data"] is None, data[:300]
    assert GATEWAY_STATUS.get(error["code"]) == status, (status, data[:300])
    return body


def well_formed_for_the_gateway(pairs: Pairs) -> bool:
    """What the gateway forwards (`workers/gateway/intake.py`, the framework's checks, then the
    handler's non-empty id): Go decodes the envelope, jsonrpc is "2.0", the method is non-empty
    and of the `confidential` service, params are present, the id has 1-200 bytes."""
    fields, type_error = fuzzing.go_string_fields(pairs, ("jsonrpc", "id", "method", "auth"))
    params = [v for k, v in pairs if k.lower() == "params"]
    return (
        not type_error
        and fields["jsonrpc"] == "2.0"
        and fields["method"].split(".", 1)[0] == rpc.GatewayServiceName
        and bool(params)
        and params[-1] is not None
        and 0 < len(fields["id"].encode()) <= 200
    )


@bounded(100)
@given(pairs=st.one_of(envelopes(), params_envelopes()))
def test_the_gateway_answers_every_envelope_with_the_node_answer_or_its_own_table(
    portal: Portal, gateway: GatewayRunner, pairs: Pairs
) -> None:
    """Fuzzed envelopes over HTTP: the node's exact PROTOCOL 2.5 answer when the gateway
    forwards, else a gateway error whose HTTP status matches PROTOCOL 2.6."""
    assert gateway.current is not None
    status, data = portal.run(post(gateway.current.url, dump_pairs(pairs).encode()))
    forwarded = well_formed_for_the_gateway(pairs)
    body = check(status, data, expected_answer(pairs) if forwarded and status == 200 else None)
    if forwarded:
        # A request the gateway accepts is answered by the node, not refused by the gateway
        # (a duplicate id in flight would be -32600; every example has its own id or none).
        assert status == 200 or body["error"]["code"] == rpc.ErrInvalidRequest, data[:300]


@bounded(100)
@given(
    raw=st.one_of(
        st.binary(max_size=300), fuzzing.json_values.map(lambda v: json.dumps(v).encode())
    )
)
def test_the_gateway_answers_arbitrary_bytes_with_an_error_of_its_table(
    portal: Portal, gateway: GatewayRunner, raw: bytes
) -> None:
    """Bytes that are no JSON-RPC request get one error answer with 2.6's status."""
    assert gateway.current is not None
    status, data = portal.run(post(gateway.current.url, raw))
    body = check(status, data, None)
    assert "error" in body, data[:300]


def with_id(pairs: Pairs, request_id: str) -> Pairs:
    return [("id", request_id) if key == "id" else (key, value) for key, value in pairs]


@bounded(100)
@given(
    pairs=params_envelopes().filter(lambda pairs: dict(pairs)["params"] is not None),
    request_id=st.text(st.characters(codec="ascii"), min_size=1, max_size=40),
)
def test_the_gateway_forwards_every_well_formed_envelope_and_returns_the_node_answer(
    portal: Portal, gateway: GatewayRunner, pairs: Pairs, request_id: str
) -> None:
    """Fuzzed params behind a valid id: the gateway forwards them all, and the enclave gets the
    node's exact PROTOCOL 2.5 answer with HTTP 200."""
    assert gateway.current is not None
    pairs = with_id(pairs, request_id)
    status, data = portal.run(post(gateway.current.url, dump_pairs(pairs).encode()))
    assert status == 200, data[:300]
    fuzzing.check_response(data, expected_answer(pairs))
