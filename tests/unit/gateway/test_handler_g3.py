"""The handler under `protocol="current"` (G3), with a fake clock: the grace window, the sweep,
expiry, duplicates and fan-out failures, exactly once."""

from __future__ import annotations

import json

from tests.unit.gateway.test_handler import GENEROUS, MEMBERS, FakeSender, make, request
from workers.gateway.errors import ErrorCode
from workers.gateway.handler import METHOD_CAPABILITY_EXECUTE, HandlerConfig, NodeOutcome

SIGNED = {"result": {"payload": "aGk="}, "signature": {"signer": "AQ==", "signature": "Ag=="}}


def config(**overrides: float) -> HandlerConfig:
    return HandlerConfig(
        global_rate=GENEROUS,
        per_node_rate=GENEROUS,
        protocol="current",
        request_timeout_s=overrides.get("timeout", 30.0),
        quorum_grace_s=overrides.get("grace", 10.0),
    )


def answer(result: object = SIGNED, req_id: str = "req-1") -> bytes:
    body = {"jsonrpc": "2.0", "id": req_id, "method": METHOD_CAPABILITY_EXECUTE, "result": result}
    return json.dumps(body).encode()


def error(req_id: str = "req-1") -> bytes:
    body = {"jsonrpc": "2.0", "id": req_id, "method": METHOD_CAPABILITY_EXECUTE,
            "error": {"code": -32603, "message": "internal error"}}  # fmt: skip
    return json.dumps(body).encode()


async def test_the_grace_deadline_is_armed_once_and_the_sweep_forwards_only_after_it() -> None:
    """F+1 signed at t=0 arms the deadline; a third answer later does not move it (it forwards
    at 2F+1 anyway); without it, the sweep before t=10 s forwards nothing, after it the two."""
    handler, clock, _ = make(config=config(grace=10.0))
    future = await handler.submit(request(method=METHOD_CAPABILITY_EXECUTE))
    assert handler.on_node_response(MEMBERS[0], answer()) is NodeOutcome.ACCEPTED
    handler.on_node_response(MEMBERS[1], answer())
    clock.now += 9.9
    handler.on_node_response(MEMBERS[2], error())  # not signed: nothing to forward yet
    handler.sweep()
    assert not future.done()
    clock.now += 0.2
    handler.sweep()
    reply = future.result()
    assert reply.code is ErrorCode.NoError
    assert len(json.loads(reply.body)["result"]["responses"]) == 2


async def test_expiry_with_f_plus_1_signed_forwards_instead_of_failing() -> None:
    """No sweep ran during the grace: at expiry (strictly after the timeout) the two signed
    answers go out as the expiry rule says, not a timeout error."""
    handler, clock, _ = make(config=config(grace=60.0, timeout=5.0))
    future = await handler.submit(request(method=METHOD_CAPABILITY_EXECUTE))
    handler.on_node_response(MEMBERS[0], answer())
    handler.on_node_response(MEMBERS[1], answer())
    clock.now += 5.01
    assert handler.sweep() == 1
    assert future.result().code is ErrorCode.NoError
    assert len(json.loads(future.result().body)["result"]["responses"]) == 2


async def test_a_second_answer_from_one_node_is_dropped_and_never_counts_twice() -> None:
    """node-0 answering twice is one signed answer, not the 2F+1 that would forward."""
    handler, _, _ = make(config=config())
    future = await handler.submit(request(method=METHOD_CAPABILITY_EXECUTE))
    handler.on_node_response(MEMBERS[0], answer())
    assert handler.on_node_response(MEMBERS[0], answer()) is NodeOutcome.DUPLICATE
    handler.on_node_response(MEMBERS[1], answer())
    assert not future.done()


async def test_a_decided_request_takes_no_more_answers() -> None:
    """After the bundle went out, a late answer finds no request (completion is exactly once)."""
    handler, _, _ = make(config=config())
    future = await handler.submit(request(method=METHOD_CAPABILITY_EXECUTE))
    for node in MEMBERS[:3]:
        handler.on_node_response(node, answer())
    assert future.done()
    assert handler.on_node_response(MEMBERS[3], answer()) is NodeOutcome.UNKNOWN_REQUEST


async def test_too_few_reachable_nodes_fail_the_fan_out_as_under_n1() -> None:
    """Three sends fail: one node cannot give F+1 signed answers: `failed to forward ...`."""
    handler, _, _ = make(config=config(), sender=FakeSender(failing=MEMBERS[1:]))
    reply = await handler.handle(request(method=METHOD_CAPABILITY_EXECUTE))
    assert reply.code is ErrorCode.FatalError
    assert json.loads(reply.body)["error"]["message"] == "failed to forward user request to nodes"


async def test_results_for_an_unknown_confidential_method_end_in_upstreams_fatal_text() -> None:
    """`confidential.other` passes intake; when nodes answer it with results the handler does not
    raise, and forwarding fails with `unknown relay method: "confidential.other"`."""
    handler, _, _ = make(config=config())
    future = await handler.submit(request(method="confidential.other"))
    for node in MEMBERS[:3]:
        body = json.dumps({"jsonrpc": "2.0", "id": "req-1", "method": "confidential.other",
                           "result": {"payload": "aGk="}}).encode()  # fmt: skip
        assert handler.on_node_response(node, body) is NodeOutcome.ACCEPTED
    reply = future.result()
    assert reply.code is ErrorCode.FatalError
    assert (
        json.loads(reply.body)["error"]["message"] == 'unknown relay method: "confidential.other"'
    )
