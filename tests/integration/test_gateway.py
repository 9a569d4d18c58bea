"""The gateway against a real nats-server and fake relay nodes: quorum, faults, floods, expiry."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import subjects
from tests.integration.gateway_fakes import (
    FakeNode,
    delayed,
    fake_don,
    faulty,
    honest,
    rpc_body,
    running_gateway,
    silent,
    unique_don,
)
from workers.gateway.actor import HTTP_STATUS_HEADER
from workers.gateway.errors import ErrorCode
from workers.gateway.handler import HandlerConfig
from workers.gateway.ratelimit import RateLimit
from workers.runtime.bus import request_msg
from workers.runtime.natsserver import NatsServer

MEMBERS = ("0x0000", "0x0001", "0x0002", "0x0003")
GO_SUCCESS = (
    b'{"jsonrpc":"2.0","id":"req-1","method":"confidential.secrets.get",'
    b'"result":{"payload":"result"}}'
)


def decoded(body: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(body)
    return value


async def test_four_honest_nodes_give_the_go_encoded_answer(nats_server: NatsServer) -> None:
    """Every node receives the unchanged request and the enclave gets the agreed envelope."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())) as nodes,
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        body = rpc_body("req-1")
        reply = await asyncio.wait_for(gateway.serve(body), timeout=5)
        assert reply.code is ErrorCode.NoError
        assert reply.body == GO_SUCCESS
        await asyncio.sleep(0.05)
        assert all(node.received == [body] for node in nodes.values())


async def test_quorum_is_reached_with_one_node_down(nats_server: NatsServer) -> None:
    """Node 3 has no subscriber (a failed send); the other three still agree."""
    don = unique_don()
    behaviours = {**dict.fromkeys(MEMBERS, honest()), "0x0003": None}
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-1")), timeout=5)
        assert reply.body == GO_SUCCESS


async def test_a_faulty_node_is_outvoted(nats_server: NatsServer) -> None:
    """One node answers a different result first; the honest majority decides."""
    don = unique_don()
    behaviours = {
        "0x0000": faulty({"payload": "forged"}),
        "0x0001": delayed(0.02, honest()),
        "0x0002": delayed(0.02, honest()),
        "0x0003": delayed(0.02, honest()),
    }
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-1")), timeout=5)
        assert reply.body == GO_SUCCESS


async def test_f_plus_1_faulty_nodes_make_quorum_unobtainable(nats_server: NatsServer) -> None:
    """Three nodes, F=1: two faulty nodes disagreeing with the honest one and each other."""
    don = unique_don()
    members = MEMBERS[:3]
    behaviours = {"0x0000": honest(), "0x0001": faulty("x"), "0x0002": faulty("y")}
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, members) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-u")), timeout=5)
        assert reply.status == 500
        assert decoded(reply.body)["error"] == {
            "code": -32603,
            "message": "quorum unobtainable: requiredQuorum=2, maxShaToCount=1, remainingResponses=0",
            "data": None,
        }


async def test_with_every_node_down_the_request_fails_at_once(nats_server: NatsServer) -> None:
    """No responders anywhere: `failed to forward user request to nodes` well before any timeout."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS)),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        started = time.monotonic()
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-d")), timeout=5)
        assert time.monotonic() - started < 1
        assert reply.status == 500
        assert decoded(reply.body)["error"]["message"] == "failed to forward user request to nodes"
        assert gateway.handler.active_count == 0


async def test_three_nodes_down_of_four_fail_the_request(nats_server: NatsServer) -> None:
    """One live node cannot make F+1=2, so the request fails as soon as the server says so."""
    don = unique_don()
    behaviours = {"0x0000": silent, "0x0001": None, "0x0002": None, "0x0003": None}
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-d")), timeout=5)
        assert reply.code is ErrorCode.FatalError
        assert decoded(reply.body)["error"]["message"] == "failed to forward user request to nodes"


async def test_two_nodes_down_of_four_still_wait_for_the_other_two(nats_server: NatsServer) -> None:
    """Quorum stays possible: the request waits and the two late honest answers complete it."""
    don = unique_don()
    behaviours = {
        "0x0000": delayed(0.2, honest()),
        "0x0001": delayed(0.2, honest()),
        "0x0002": None,
        "0x0003": None,
    }
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        task = asyncio.create_task(gateway.serve(rpc_body("req-1")))
        await asyncio.sleep(0.1)
        assert not task.done()
        assert gateway.handler.is_active("req-1")
        reply = await asyncio.wait_for(task, timeout=5)
        assert reply.body == GO_SUCCESS


async def test_a_request_nobody_answers_expires_with_504(nats_server: NatsServer) -> None:
    """All nodes silent: the sweep answers -32000 `request expired: got 0/2 responses`."""
    don = unique_don()
    config = HandlerConfig(request_timeout_s=0.2)
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, silent)),
        running_gateway(
            nats_server.url, don, MEMBERS, config=config, sweep_interval_s=0.05
        ) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-t")), timeout=5)
        assert reply.status == 504
        assert decoded(reply.body)["error"] == {
            "code": -32000,
            "message": "request expired: got 0/2 responses",
            "data": None,
        }


async def test_garbage_wrong_ids_and_duplicates_do_not_disturb_the_quorum(
    nats_server: NatsServer,
) -> None:
    """Node 0 sends garbage, node 1 answers another id twice, nodes 2 and 3 still decide."""

    async def garbage(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        await node.answer(msg, b"\x00\xffnot json at all")

    async def wrong_id_twice(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        for _ in range(2):
            await node.answer(msg, json.dumps({"jsonrpc": "2.0", "id": "other"}).encode())

    don = unique_don()
    behaviours = {
        "0x0000": garbage,
        "0x0001": wrong_id_twice,
        "0x0002": delayed(0.02, honest()),
        "0x0003": delayed(0.02, honest()),
    }
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-1")), timeout=5)
        assert reply.body == GO_SUCCESS


async def test_a_node_cannot_answer_in_another_nodes_name(nats_server: NatsServer) -> None:
    """A Relay-Node header naming another member is dropped. Here it would decide: 0x0000's
    only answer claims to be 0x0001's, and with 0x0001's own "evil" it would make F+1 for
    "evil" before the honest nodes answer; dropped, the honest pair wins."""

    async def impersonate(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        forged = json.dumps(
            {"jsonrpc": "2.0", "id": request["id"], "method": request["method"], "result": "evil"}
        ).encode()
        await node.answer(msg, forged, header="0x0001")

    don = unique_don()
    behaviours = {
        "0x0000": impersonate,
        "0x0001": faulty("evil"),
        "0x0002": delayed(0.3, honest()),
        "0x0003": delayed(0.3, honest()),
    }
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(rpc_body("req-1")), timeout=5)
        assert reply.body == GO_SUCCESS


async def test_a_flooding_node_cannot_stall_other_requests(nats_server: NatsServer) -> None:
    """With the default limits, 2000 junk messages per request from one node stall nothing."""
    flood = 2000

    async def flooder(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        junk = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "spam"}).encode()
        for i in range(flood):
            await node.nc.publish(msg.reply, junk if i % 2 else b"garbage")

    don = unique_don()
    behaviours = {
        "0x0000": flooder,
        "0x0001": delayed(0.05, honest()),
        "0x0002": delayed(0.05, honest()),
        "0x0003": delayed(0.05, honest()),
    }
    config = HandlerConfig()  # the defaults: 50rps:10 global, 10rps:10 per node
    async with (
        fake_don(nats_server.url, don, behaviours),
        running_gateway(nats_server.url, don, MEMBERS, config=config) as gateway,
    ):
        started = time.monotonic()
        replies = await asyncio.wait_for(
            asyncio.gather(*(gateway.serve(rpc_body(f"req-{i}")) for i in range(3))), timeout=10
        )
        elapsed = time.monotonic() - started
        assert [r.code for r in replies] == [ErrorCode.NoError] * 3
        # Unflooded this takes ~0.1 s; the bound leaves room for a loaded CI machine.
        assert elapsed < 5, elapsed


async def test_many_concurrent_requests_are_each_answered_once(nats_server: NatsServer) -> None:
    """Fifty requests in flight at once all reach quorum with their own ids."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        replies = await asyncio.wait_for(
            asyncio.gather(*(gateway.serve(rpc_body(f"c-{i}")) for i in range(50))), timeout=10
        )
        assert [decoded(r.body)["id"] for r in replies] == [f"c-{i}" for i in range(50)]
        assert gateway.handler.active_count == 0


async def test_a_duplicate_id_in_flight_is_rejected(nats_server: NatsServer) -> None:
    """While req-1 waits for slow nodes, a second req-1 gets HandlerError 400."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, delayed(0.2, honest()))),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        first = asyncio.create_task(gateway.serve(rpc_body("req-1")))
        await asyncio.sleep(0.05)
        second = await gateway.serve(rpc_body("req-1"))
        assert second.status == 400
        assert decoded(second.body)["error"]["message"] == "request ID already exists: req-1"
        assert (await asyncio.wait_for(first, timeout=5)).body == GO_SUCCESS


async def test_the_nats_front_answers_with_the_http_status_header(
    nats_server: NatsServer, nc: Client
) -> None:
    """A request on the gateway subject gets the JSON-RPC body and Relay-Http-Status."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())),
        running_gateway(nats_server.url, don, MEMBERS),
    ):
        ok = await request_msg(nc, subjects.gateway(don), rpc_body("req-1"), timeout_s=5)
        assert ok.data == GO_SUCCESS
        assert ok.headers == {HTTP_STATUS_HEADER: "200"}
        bad = await request_msg(nc, subjects.gateway(don), b"{oops", timeout_s=5)
        assert bad.headers == {HTTP_STATUS_HEADER: "400"}
        assert decoded(bad.data)["error"]["code"] == -32700


async def test_stopping_lets_an_in_flight_request_finish(nats_server: NatsServer) -> None:
    """stop() waits for the pending request, which completes with the nodes' answer."""
    don = unique_don()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, delayed(0.2, honest()))),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        task = asyncio.create_task(gateway.serve(rpc_body("req-1")))
        await asyncio.sleep(0.05)
        await gateway.stop()
        assert task.done()
        assert task.result().body == GO_SUCCESS
        refused = await gateway.serve(rpc_body("req-2"))
        assert decoded(refused.body)["error"]["message"] == "gateway is shutting down"


async def test_a_draining_replica_hands_new_nats_requests_to_the_others_and_serves_its_own(
    nats_server: NatsServer, nc: Client
) -> None:
    """Stopping replica A leaves the queue group first: its accepted request still gets the
    nodes' answer, and a request sent during the drain is served by replica B, not refused."""
    don = unique_don()
    slow = dict.fromkeys(MEMBERS, delayed(0.4, honest()))
    async with (
        fake_don(nats_server.url, don, slow),
        running_gateway(nats_server.url, don, MEMBERS) as replica_a,
        running_gateway(nats_server.url, don, MEMBERS) as replica_b,
    ):
        gateway_subject = subjects.gateway(don)
        # Queue groups pick at random: send until one request sits on each replica.
        in_flight = [
            asyncio.create_task(request_msg(nc, gateway_subject, rpc_body(f"r-{i}"), timeout_s=5))
            for i in range(8)
        ]
        await asyncio.sleep(0.1)
        assert replica_a.handler.active_count > 0
        assert replica_b.handler.active_count > 0
        stopping = asyncio.create_task(replica_a.stop())
        await asyncio.sleep(0.05)
        # Six of them: with A still in the queue group, one would reach A (63 times in 64).
        during = await asyncio.gather(
            *(
                request_msg(nc, gateway_subject, rpc_body(f"during-{i}"), timeout_s=5)
                for i in range(6)
            )
        )
        for msg in during:
            assert decoded(msg.data).get("result") == {"payload": "result"}, msg.data
        await stopping
        for i, task in enumerate(in_flight):
            answer = decoded((await task).data)
            assert (answer["id"], answer.get("result")) == (f"r-{i}", {"payload": "result"})


async def test_the_per_node_limit_applies_over_nats(nats_server: NatsServer) -> None:
    """Per-node burst 1 and F=3: after the first request each node's next answer is dropped."""
    don = unique_don()
    config = HandlerConfig(
        per_node_rate=RateLimit(rate=0.001, burst=1),
        global_rate=RateLimit(rate=1000.0, burst=1000),
        request_timeout_s=0.3,
    )
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())),
        running_gateway(
            nats_server.url, don, MEMBERS, f=3, config=config, sweep_interval_s=0.05
        ) as gateway,
    ):
        first = await asyncio.wait_for(gateway.serve(rpc_body("a")), timeout=5)
        assert first.code is ErrorCode.NoError
        second = await asyncio.wait_for(gateway.serve(rpc_body("b")), timeout=5)
        assert decoded(second.body)["error"]["message"] == "request expired: got 0/4 responses"
