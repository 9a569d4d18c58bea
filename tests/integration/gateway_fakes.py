"""Fake relay nodes and a gateway harness for the gateway's integration tests.

A fake node is a plain NATS subscriber on `subjects.rpc(don, node)` that answers the way the
real ingress does (one publish to the reply subject, `Relay-Node` header) or misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import subjects
from workers.gateway.actor import NODE_HEADER, GatewayActor, GatewaySettings
from workers.gateway.handler import DonConfig, HandlerConfig, StaticMembership
from workers.gateway.ratelimit import RateLimit
from workers.runtime.bus import connect

Behaviour = Callable[["FakeNode", Msg, dict[str, Any]], Coroutine[Any, Any, None]]
GENEROUS = RateLimit(rate=100_000.0, burst=100_000)


def unique_don() -> str:
    return f"don-{uuid.uuid4().hex[:8]}"


def rpc_body(req_id: str, method: str = "confidential.secrets.get", params: Any = None) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {"k": "v"}}
    ).encode()


@dataclass(eq=False)
class FakeNode:
    nc: Client
    address: str
    behaviour: Behaviour
    received: list[bytes] = field(default_factory=list)

    async def answer(self, msg: Msg, body: bytes, *, header: str | None = None) -> None:
        await self.nc.publish(msg.reply, body, headers={NODE_HEADER: header or self.address})


def response(request: dict[str, Any], result: Any) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request["id"], "method": request["method"], "result": result}
    ).encode()


def honest(result: Any = None) -> Behaviour:
    """Answers like a correct relay: same id and method, the agreed result."""

    async def act(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        await node.answer(msg, response(request, result or {"payload": "result"}))

    return act


def faulty(result: Any) -> Behaviour:
    async def act(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        await node.answer(msg, response(request, result))

    return act


async def silent(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
    """Takes the request and never answers."""


def delayed(delay_s: float, inner: Behaviour) -> Behaviour:
    async def act(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        await asyncio.sleep(delay_s)
        await inner(node, msg, request)

    return act


@asynccontextmanager
async def fake_don(
    url: str, don: str, behaviours: Mapping[str, Behaviour | None]
) -> AsyncIterator[dict[str, FakeNode]]:
    """Run one fake node per member; a None behaviour means that node is down (no subscriber).

    Each node has its own connection, as real nodes do, so one node's flood does not queue
    another node's answers behind it in a shared client buffer.
    """
    nodes: dict[str, FakeNode] = {}
    tasks: set[asyncio.Task[None]] = set()
    try:
        for address, behaviour in behaviours.items():
            if behaviour is None:
                continue
            nc = await connect(url, actor="fake-relay")
            node = FakeNode(nc=nc, address=address, behaviour=behaviour)
            nodes[address] = node

            async def on_msg(msg: Msg, node: FakeNode = node) -> None:
                node.received.append(msg.data)
                request = json.loads(msg.data)
                # Answer from a task so a slow behaviour does not hold up the subscription.
                task = asyncio.create_task(node.behaviour(node, msg, request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            await nc.subscribe(subjects.rpc(don, address), cb=on_msg)
            await nc.flush()
        yield nodes
    finally:
        for task in list(tasks):
            task.cancel()
        for node in nodes.values():
            await node.nc.close()


@asynccontextmanager
async def running_gateway(
    url: str,
    don: str,
    members: tuple[str, ...],
    *,
    f: int = 1,
    config: HandlerConfig | None = None,
    sweep_interval_s: float = 5.0,
    drain_timeout_s: float = 2.0,
) -> AsyncIterator[GatewayActor]:
    nc = await connect(url, actor="gateway")
    settings = GatewaySettings(
        don=don,
        handler=config or HandlerConfig(global_rate=GENEROUS, per_node_rate=GENEROUS),
        sweep_interval_s=sweep_interval_s,
        drain_timeout_s=drain_timeout_s,
    )
    actor = GatewayActor(nc, settings, StaticMembership(DonConfig(name=don, f=f, members=members)))
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()
        if not nc.is_closed:
            await nc.close()
