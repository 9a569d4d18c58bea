"""The gateway handler's rules (PROTOCOL 6.4 rows 1-17 and more), with a fake clock and a fake transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.handler import (
    METHOD_CAPABILITY_EXECUTE,
    METHOD_SECRETS_GET,
    DonConfig,
    DonConfigError,
    GatewayHandler,
    HandlerConfig,
    MembershipUnavailable,
    NodeOutcome,
    SendError,
    StaticMembership,
    UserRequest,
)
from workers.gateway.ratelimit import RateLimit

MEMBERS = ("0x0000", "0x0001", "0x0002", "0x0003")
GENEROUS = RateLimit(rate=1e6, burst=1_000_000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSender:
    """Records every send; nodes in `failing` raise SendError, as a no-responders send would."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = set(failing)
        self.sent: list[tuple[str, int, bytes]] = []

    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        self.sent.append((node, ticket, payload))
        if node in self.failing:
            raise SendError(f"no responders for {node}")


class Unavailable:
    def current(self) -> DonConfig:
        raise MembershipUnavailable("registry not loaded")


def make(
    *,
    f: int = 1,
    members: tuple[str, ...] = MEMBERS,
    sender: Any = None,
    config: HandlerConfig | None = None,
) -> tuple[GatewayHandler, FakeClock, Any]:
    clock = FakeClock()
    sender = sender or FakeSender()
    handler = GatewayHandler(
        membership=StaticMembership(DonConfig(name="test_relay_don", f=f, members=members)),
        sender=sender,
        config=config or HandlerConfig(global_rate=GENEROUS, per_node_rate=GENEROUS),
        clock=clock,
    )
    return handler, clock, sender


def request(req_id: str = "req-1", method: str = METHOD_SECRETS_GET) -> UserRequest:
    raw = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": {}}).encode()
    return UserRequest(id=req_id, method=method, raw=raw)


def node_response(req_id: str, result: Any, method: str = METHOD_SECRETS_GET) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "result": result}).encode()


def body(reply: GatewayReply) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(reply.body)
    return decoded


def test_the_handler_serves_exactly_the_two_relay_methods() -> None:
    """Methods() lists secrets.get then capability.execute, as upstream does."""
    assert GatewayHandler.methods() == [METHOD_SECRETS_GET, METHOD_CAPABILITY_EXECUTE]


def test_a_legacy_message_is_refused_with_the_fixed_text() -> None:
    """Legacy messages get a HandlerError (-32600, 400) with upstream's message."""
    handler, _, _ = make()
    reply = handler.legacy_message()
    assert reply.code is ErrorCode.HandlerError
    assert reply.status == 400
    assert body(reply)["error"] == {
        "code": -32600,
        "message": "confidential relay handler does not support legacy messages",
        "data": None,
    }


async def test_an_id_of_201_bytes_is_rejected_with_the_exact_message() -> None:
    """201 x's is one byte over the limit and nothing is sent to any node."""
    handler, _, sender = make()
    reply = await handler.handle(request("x" * 201))
    assert body(reply)["error"]["message"] == "request ID is too long: 201. max is 200 characters"
    assert reply.code is ErrorCode.HandlerError
    assert sender.sent == []


async def test_the_id_limit_counts_utf8_bytes_not_characters() -> None:
    """101 two-byte characters are 202 bytes, so the id is too long."""
    handler, _, _ = make()
    reply = await handler.handle(request("é" * 101))
    assert body(reply)["error"]["message"] == "request ID is too long: 202. max is 200 characters"


async def test_an_empty_id_is_rejected_with_the_exact_message() -> None:
    """An empty id gets `request ID cannot be empty` as a HandlerError."""
    handler, _, _ = make()
    reply = await handler.handle(request(""))
    assert body(reply) == {
        "jsonrpc": "2.0",
        "id": "",
        "method": "",
        "error": {"code": -32600, "message": "request ID cannot be empty", "data": None},
    }
    assert reply.status == 400


async def test_every_member_gets_the_unchanged_request_and_one_answer_completes_an_f0_don() -> None:
    """With F=0 a single node response is quorum; every member received the original bytes."""
    handler, _, sender = make(f=0)
    req = request("req-1")
    future = await handler.submit(req)
    assert sorted(node for node, _, _ in sender.sent) == sorted(MEMBERS)
    assert all(payload == req.raw for _, _, payload in sender.sent)
    assert handler.on_node_response("0x0002", node_response("req-1", {"payload": "result"})) is (
        NodeOutcome.ACCEPTED
    )
    reply = future.result()
    assert reply.code is ErrorCode.NoError
    assert reply.status == 200
    assert body(reply)["id"] == "req-1"
    assert not handler.is_active("req-1")


async def test_two_identical_responses_reach_quorum_when_f_is_1() -> None:
    """F=1: the second identical response completes the request with that response."""
    handler, _, _ = make()
    future = await handler.submit(request("req-1"))
    handler.on_node_response("0x0000", node_response("req-1", {"payload": "result"}))
    assert not future.done()
    handler.on_node_response("0x0001", node_response("req-1", {"payload": "result"}))
    assert body(future.result())["result"] == {"payload": "result"}


async def test_a_divergent_response_is_outvoted_by_a_matching_pair() -> None:
    """One divergent result, then two matching ones: quorum is on the matching pair."""
    handler, _, _ = make()
    future = await handler.submit(request("req-1"))
    handler.on_node_response("0x0000", node_response("req-1", {"payload": "evil"}))
    handler.on_node_response("0x0001", node_response("req-1", {"payload": "good"}))
    assert not future.done()
    handler.on_node_response("0x0002", node_response("req-1", {"payload": "good"}))
    assert body(future.result())["result"] == {"payload": "good"}


async def test_four_different_answers_make_quorum_unobtainable() -> None:
    """All four nodes disagree: a FatalError with upstream's text and the id echoed."""
    handler, _, _ = make()
    future = await handler.submit(request("req-q"))
    for i, node in enumerate(MEMBERS):
        handler.on_node_response(node, node_response("req-q", {"n": i}))
    reply = future.result()
    assert reply.code is ErrorCode.FatalError
    assert reply.status == 500
    assert body(reply)["id"] == "req-q"
    assert body(reply)["error"] == {
        "code": -32603,
        "message": "quorum unobtainable: requiredQuorum=2, maxShaToCount=1, remainingResponses=0",
        "data": None,
    }


async def test_quorum_unobtainable_is_reported_before_the_last_node_answers() -> None:
    """F=2 of 4: after three different answers one more cannot make three agree."""
    handler, _, _ = make(f=2)
    future = await handler.submit(request("req-q"))
    for i, node in enumerate(MEMBERS[:2]):
        handler.on_node_response(node, node_response("req-q", {"n": i}))
    assert not future.done()
    handler.on_node_response(MEMBERS[2], node_response("req-q", {"n": 2}))
    assert body(future.result())["error"]["message"] == (
        "quorum unobtainable: requiredQuorum=3, maxShaToCount=1, remainingResponses=1"
    )


async def test_identical_errors_from_f_plus_1_nodes_are_the_answer() -> None:
    """Error envelopes take part in quorum and are forwarded with HTTP 200."""
    handler, _, _ = make()
    future = await handler.submit(request("req-e"))
    error = {"jsonrpc": "2.0", "id": "req-e", "method": METHOD_SECRETS_GET}
    error["error"] = {"code": -32603, "message": "internal error"}  # type: ignore[assignment]
    for node in MEMBERS[:2]:
        handler.on_node_response(node, json.dumps(error).encode())
    reply = future.result()
    assert reply.code is ErrorCode.NoError
    assert reply.body == (
        b'{"jsonrpc":"2.0","id":"req-e","method":"confidential.secrets.get",'
        b'"error":{"code":-32603,"message":"internal error"}}'
    )


async def test_a_request_expires_after_the_timeout_with_the_responses_counted() -> None:
    """31 s later the sweep answers -32000 `request expired: got 1/2 responses` with HTTP 504."""
    handler, clock, _ = make()
    future = await handler.submit(request("req-t"))
    handler.on_node_response("0x0000", node_response("req-t", "x"))
    clock.now += 30.0
    assert handler.sweep() == 0  # expiry is strictly after the timeout
    clock.now += 1.0
    assert handler.sweep() == 1
    reply = future.result()
    assert reply.code is ErrorCode.RequestTimeoutError
    assert reply.status == 504
    assert body(reply)["error"] == {
        "code": -32000,
        "message": "request expired: got 1/2 responses",
        "data": None,
    }
    assert handler.active_count == 0


async def test_a_second_request_with_an_id_in_flight_is_rejected() -> None:
    """While req-1 is active, another req-1 gets `request ID already exists: req-1`."""
    handler, _, _ = make()
    first = await handler.submit(request("req-1"))
    reply = await handler.handle(request("req-1"))
    assert body(reply)["error"]["message"] == "request ID already exists: req-1"
    assert reply.code is ErrorCode.HandlerError
    assert not first.done()


async def test_a_rate_limited_node_is_silently_dropped() -> None:
    """Per-node limit 0.001 rps burst 1: the node's first response counts, its second is dropped."""
    config = HandlerConfig(global_rate=GENEROUS, per_node_rate=RateLimit(rate=0.001, burst=1))
    handler, _, _ = make(f=0, config=config)
    first = await handler.submit(request("A"))
    second = await handler.submit(request("B"))
    handler.on_node_response("0x0000", node_response("A", 1))
    assert first.result().code is ErrorCode.NoError
    outcome = handler.on_node_response("0x0000", node_response("B", 1))
    assert outcome is NodeOutcome.NODE_RATE_LIMITED
    await asyncio.sleep(0.05)
    assert not second.done()
    # Another node still has its own bucket.
    assert handler.on_node_response("0x0001", node_response("B", 1)) is NodeOutcome.ACCEPTED


async def test_the_global_limit_drops_responses_from_every_node() -> None:
    """Global burst 2: the third response in the same instant is dropped whoever sent it."""
    config = HandlerConfig(global_rate=RateLimit(rate=0.001, burst=2), per_node_rate=GENEROUS)
    handler, clock, _ = make(config=config)
    future = await handler.submit(request("G"))
    assert handler.on_node_response("0x0000", node_response("G", 1)) is NodeOutcome.ACCEPTED
    assert handler.on_node_response("0x0001", node_response("G", 2)) is NodeOutcome.ACCEPTED
    assert handler.on_node_response("0x0002", node_response("G", 1)) is (
        NodeOutcome.GLOBAL_RATE_LIMITED
    )
    assert not future.done()
    clock.now += 1000.0  # one token back
    assert handler.on_node_response("0x0002", node_response("G", 1)) is NodeOutcome.ACCEPTED
    assert body(future.result())["result"] == 1


async def test_one_nodes_junk_cannot_use_up_the_global_budget() -> None:
    """Global burst 3: node 0's vote plus nine junk messages still leave two tokens for quorum."""
    config = HandlerConfig(global_rate=RateLimit(rate=0.001, burst=3), per_node_rate=GENEROUS)
    handler, _, _ = make(config=config)
    future = await handler.submit(request("J"))
    assert handler.on_node_response("0x0000", node_response("J", "forged")) is NodeOutcome.ACCEPTED
    for _ in range(3):
        handler.on_node_response("0x0000", b"junk")
        handler.on_node_response("0x0000", node_response("J", "again"))
        handler.on_node_response("0x0000", node_response("nobody", 1))
    assert handler.on_node_response("0x0001", node_response("J", "ok")) is NodeOutcome.ACCEPTED
    assert handler.on_node_response("0x0002", node_response("J", "ok")) is NodeOutcome.ACCEPTED
    assert body(future.result())["result"] == "ok"


async def test_a_response_for_an_unknown_request_changes_nothing() -> None:
    """A late or unknown id is dropped and the active request is untouched."""
    handler, _, _ = make()
    future = await handler.submit(request("live"))
    assert handler.on_node_response("0x0000", node_response("gone", 1)) is (
        NodeOutcome.UNKNOWN_REQUEST
    )
    assert not future.done()
    assert handler.is_active("live")


async def test_a_response_from_a_non_member_is_rejected_before_anything_else() -> None:
    """An address outside the DON is dropped, even when it names a live request."""
    handler, _, _ = make(f=0)
    future = await handler.submit(request("live"))
    assert handler.on_node_response("0xffff", node_response("live", 1)) is (
        NodeOutcome.UNEXPECTED_NODE
    )
    assert not future.done()


async def test_garbage_from_a_node_is_dropped_and_other_requests_still_complete() -> None:
    """Non-JSON, a JSON array and a numeric id are malformed; the request completes afterwards."""
    handler, _, _ = make()
    future = await handler.submit(request("r"))
    for junk in (b"\xff\x00garbage", b"[1,2]", b'{"id":5}', b'{"id":"r"} trailing'):
        assert handler.on_node_response("0x0000", junk) is NodeOutcome.MALFORMED
    handler.on_node_response("0x0000", node_response("r", "ok"))
    handler.on_node_response("0x0001", node_response("r", "ok"))
    assert body(future.result())["result"] == "ok"


async def test_the_first_response_of_a_node_wins_and_duplicates_are_ignored() -> None:
    """A node that changes its answer cannot vote twice."""
    handler, _, _ = make()
    future = await handler.submit(request("d"))
    assert handler.on_node_response("0x0000", node_response("d", "a")) is NodeOutcome.ACCEPTED
    assert handler.on_node_response("0x0000", node_response("d", "b")) is NodeOutcome.DUPLICATE
    handler.on_node_response("0x0001", node_response("d", "b"))
    assert not future.done()


async def test_a_late_answer_to_an_earlier_request_with_the_same_id_does_not_count() -> None:
    """The ticket of an expired request no longer matches when its id is reused."""
    handler, clock, sender = make()
    old = await handler.submit(request("same"))
    old_ticket = sender.sent[0][1]
    clock.now += 31
    handler.sweep()
    assert old.result().code is ErrorCode.RequestTimeoutError
    new = await handler.submit(request("same"))
    outcome = handler.on_node_response("0x0000", node_response("same", 1), ticket=old_ticket)
    assert outcome is NodeOutcome.STALE
    assert not new.done()


async def test_when_every_send_fails_the_request_fails_at_once() -> None:
    """All four sends fail: FatalError `failed to forward user request to nodes`."""
    handler, _, _ = make(sender=FakeSender(failing=MEMBERS))
    reply = await handler.handle(request("f"))
    assert reply.code is ErrorCode.FatalError
    assert reply.status == 500
    assert body(reply)["error"]["message"] == "failed to forward user request to nodes"
    assert handler.active_count == 0


async def test_two_failed_sends_of_four_leave_the_request_waiting() -> None:
    """Two reachable nodes can still make F+1=2, so nothing is answered yet."""
    handler, _, _ = make(sender=FakeSender(failing=MEMBERS[:2]))
    future = await handler.submit(request("f"))
    await asyncio.sleep(0.01)
    assert not future.done()
    assert handler.is_active("f")


async def test_three_failed_sends_of_four_fail_the_request_and_free_its_id() -> None:
    """One reachable node cannot make F+1=2: FatalError, and the id is no longer active."""
    handler, _, _ = make(sender=FakeSender(failing=MEMBERS[:3]))
    future = await handler.submit(request("f"))
    assert body(future.result())["error"]["message"] == "failed to forward user request to nodes"
    assert not handler.is_active("f")


async def test_a_failure_reported_after_the_send_counts_too() -> None:
    """No-responders reported asynchronously for a third node fails the request then."""
    handler, _, sender = make(sender=FakeSender(failing=MEMBERS[:2]))
    future = await handler.submit(request("f"))
    ticket = sender.sent[0][1]
    handler.on_send_failed("0x0002", ticket, "no responders")
    assert future.result().code is ErrorCode.FatalError


async def test_failed_sends_shrink_what_quorum_can_still_count_on() -> None:
    """Two nodes down and the other two disagree: quorum unobtainable at once, not at expiry."""
    handler, _, _ = make(sender=FakeSender(failing=MEMBERS[2:]))
    future = await handler.submit(request("s"))
    handler.on_node_response("0x0000", node_response("s", 1))
    handler.on_node_response("0x0001", node_response("s", 2))
    assert body(future.result())["error"]["message"] == (
        "quorum unobtainable: requiredQuorum=2, maxShaToCount=1, remainingResponses=0"
    )


async def test_the_fan_out_sends_to_all_nodes_concurrently() -> None:
    """Each send blocks until both have started, and submit still returns within 100 ms."""
    started: set[str] = set()
    both = asyncio.Event()

    class Blocking:
        async def send(self, node: str, ticket: int, payload: bytes) -> None:
            started.add(node)
            if len(started) == 2:
                both.set()
            await both.wait()

    handler, _, _ = make(f=0, members=("a", "b"), sender=Blocking())
    future = await asyncio.wait_for(handler.submit(request("c")), timeout=0.1)
    assert started == {"a", "b"}
    assert not future.done()


async def test_a_send_that_hangs_past_the_send_timeout_counts_as_failed() -> None:
    """A send stuck longer than node_send_timeout_s is a failed send, not a stalled request."""

    class Hanging:
        async def send(self, node: str, ticket: int, payload: bytes) -> None:
            await asyncio.sleep(10)

    config = HandlerConfig(node_send_timeout_s=0.01)
    handler, _, _ = make(sender=Hanging(), config=config)
    reply = await asyncio.wait_for(handler.handle(request("h")), timeout=2)
    assert body(reply)["error"]["message"] == "failed to forward user request to nodes"


async def test_capability_execute_takes_the_same_path() -> None:
    """A capability.execute request is sent to every node and completes on quorum."""
    handler, _, sender = make()
    future = await handler.submit(request("cap", METHOD_CAPABILITY_EXECUTE))
    assert len(sender.sent) == 4
    for node in MEMBERS[1:3]:
        handler.on_node_response(node, node_response("cap", {"ok": 1}, METHOD_CAPABILITY_EXECUTE))
    assert body(future.result())["method"] == METHOD_CAPABILITY_EXECUTE


async def test_the_answer_is_the_envelope_of_the_first_agreeing_node_in_address_order() -> None:
    """Same digest, different bytes: the returned bytes come from the smallest address, not
    from the node whose answer completed the quorum (0x0003 answers last here)."""
    handler, _, _ = make()
    future = await handler.submit(request("o"))
    handler.on_node_response(
        "0x0001", b'{"jsonrpc":"2.0","id":"o","method":"m","result":{"a":2, "b":1}}'
    )
    assert not future.done()
    handler.on_node_response(
        "0x0003", b'{"result":{"b":1,"a":2},"method":"m","id":"o","jsonrpc":"2.0"}'
    )
    assert future.result().body == b'{"jsonrpc":"2.0","id":"o","method":"m","result":{"a":2,"b":1}}'


async def test_a_caller_that_gives_up_frees_the_request_id() -> None:
    """Cancelling the future (the HTTP client left) removes the active request."""
    handler, _, _ = make()
    future = await handler.submit(request("bye"))
    future.cancel()
    await asyncio.sleep(0)
    assert not handler.is_active("bye")
    assert handler.on_node_response("0x0000", node_response("bye", 1)) is (
        NodeOutcome.UNKNOWN_REQUEST
    )


async def test_too_many_requests_in_flight_are_refused_with_limit_exceeded() -> None:
    """Beyond max_active_requests a new request gets -32002 and HTTP 429."""
    config = HandlerConfig(max_active_requests=1, global_rate=GENEROUS, per_node_rate=GENEROUS)
    handler, _, _ = make(config=config)
    await handler.submit(request("one"))
    reply = await handler.handle(request("two"))
    assert reply.code is ErrorCode.LimitExceededError
    assert reply.status == 429
    assert body(reply)["error"]["code"] == -32002


async def test_without_membership_requests_fail_closed() -> None:
    """An unknown DON membership answers FatalError and sends nothing."""
    sender = FakeSender()
    handler = GatewayHandler(membership=Unavailable(), sender=sender, clock=FakeClock())
    reply = await handler.handle(request("m"))
    assert reply.code is ErrorCode.FatalError
    assert sender.sent == []
    assert handler.on_node_response("0x0000", node_response("m", 1)) is (
        NodeOutcome.UNEXPECTED_NODE
    )


async def test_shutdown_answers_what_is_still_pending() -> None:
    """fail_all answers every active request and wait_idle then returns at once."""
    handler, _, _ = make()
    futures = [await handler.submit(request(f"p{i}")) for i in range(3)]
    assert not await handler.wait_idle(0.01)
    assert handler.fail_all("gateway is shutting down") == 3
    assert all(f.result().code is ErrorCode.FatalError for f in futures)
    assert await handler.wait_idle(0.01)


@pytest.mark.parametrize(
    ("f", "members"),
    [(-1, ("a",)), (1, ("a",)), (0, ("a", "a")), (0, ("",))],
)
def test_a_don_the_gateway_cannot_count_on_is_rejected(f: int, members: tuple[str, ...]) -> None:
    """Negative F, too few members, duplicate or empty addresses raise DonConfigError."""
    with pytest.raises(DonConfigError, match=r"DON 'd'"):
        DonConfig(name="d", f=f, members=members)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_a_gateway_timeout_that_is_not_a_finite_positive_number_is_refused(value: float) -> None:
    """nan slipped past `<= 0`, inf is no timeout at all: both are refused like 0."""
    with pytest.raises(ValueError, match="finite number of seconds"):
        HandlerConfig(request_timeout_s=value)
    with pytest.raises(ValueError, match="finite number of seconds"):
        HandlerConfig(node_send_timeout_s=value)


class HangingSender:
    """A send that never completes (a stuck node connection)."""

    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        await asyncio.Event().wait()


async def test_a_caller_cancelled_during_fan_out_releases_its_request_id_at_once() -> None:
    """The HTTP client leaves while sends hang: the id is free again without waiting a sweep."""
    handler, _, _ = make(sender=HangingSender())
    task = asyncio.create_task(handler.handle(request("req-cancel")))
    await asyncio.sleep(0.01)
    assert handler.active_count == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the future's done callback
    assert handler.active_count == 0


async def test_after_a_reconnect_only_the_nodes_that_have_not_answered_get_the_request_again() -> (
    None
):
    """One node answered before the outage: the other three get the same ticket and bytes again."""
    handler, clock, sender = make()
    future = await handler.submit(request("req-1"))
    handler.on_node_response("0x0000", node_response("req-1", {"payload": "result"}))
    first_ticket = sender.sent[0][1]
    sender.sent.clear()
    assert await handler.resend_unanswered(created_before=clock.now) == 3
    assert sorted(node for node, _, _ in sender.sent) == ["0x0001", "0x0002", "0x0003"]
    assert {ticket for _, ticket, _ in sender.sent} == {first_ticket}
    assert {payload for _, _, payload in sender.sent} == {request("req-1").raw}
    handler.on_node_response("0x0001", node_response("req-1", {"payload": "result"}))
    assert (await future).code is ErrorCode.NoError


async def test_a_request_made_during_the_outage_is_resent_only_to_nodes_whose_send_failed() -> None:
    """Its sends were buffered and flushed at reconnect: only the failed one goes again."""
    sender = FakeSender(failing=("0x0003",))
    handler, clock, _ = make(sender=sender)
    outage_started = clock.now
    clock.now += 1.0
    await handler.submit(request("during"))
    sender.sent.clear()
    sender.failing.clear()
    assert await handler.resend_unanswered(created_before=outage_started) == 1
    assert [node for node, _, _ in sender.sent] == ["0x0003"]
    assert handler.is_active("during")
