"""A nats-server crash does not strand the gateway's in-flight requests (issue 13, defect 4).

The test starts its own nats-server, kills it with SIGKILL (by PID) while four nodes hold a
request, and restarts it on the same port. The nodes' answers are published during the outage
on connections that buffer nothing, so they are lost, as answers in flight in a crashed server
are. After reconnecting, the gateway sends the request again to the nodes that have not
answered; without that, the request would wait out its whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import subjects
from tests.integration.gateway_fakes import GENEROUS, rpc_body, unique_don
from workers.gateway.actor import NODE_HEADER, GatewayActor, GatewaySettings
from workers.gateway.errors import ErrorCode
from workers.gateway.handler import DonConfig, HandlerConfig, StaticMembership
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer

MEMBERS = ("n0", "n1", "n2", "n3")
ANSWER_AFTER_S = 0.5
TIMEOUT_S = 12.0


@pytest.fixture
async def own_server() -> AsyncIterator[NatsServer]:
    server = NatsServer(jetstream=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        server.cleanup()


async def lossy_nodes(url: str, don: str, seen: list[str], all_seen: asyncio.Event) -> list[Client]:
    """Nodes that answer after ANSWER_AFTER_S on connections that buffer nothing while down."""
    clients: list[Client] = []
    for node in MEMBERS:

        async def ignore(_: Exception) -> None:
            return None

        nc = await nats.connect(
            url,
            pending_size=0,  # a publish while disconnected fails: the answer is lost
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=ignore,
        )

        async def on_msg(msg: Msg, nc: Client = nc, node: str = node) -> None:
            seen.append(node)
            if len(seen) >= len(MEMBERS):
                all_seen.set()
            request = json.loads(msg.data)

            async def answer() -> None:
                await asyncio.sleep(ANSWER_AFTER_S)
                body = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": request["id"],
                        "method": request["method"],
                        "result": {"ok": True},
                    }
                ).encode()
                with contextlib.suppress(Exception):  # lost while the server is down
                    await nc.publish(msg.reply, body, headers={NODE_HEADER: node})

            asyncio.get_running_loop().create_task(answer())

        await nc.subscribe(subjects.rpc(don, node), cb=on_msg)
        await nc.flush()
        clients.append(nc)
    return clients


async def test_a_request_in_flight_at_a_server_crash_is_resent_and_answered(
    own_server: NatsServer,
) -> None:
    """kill -9 of nats-server while 4 nodes hold a request: answered after restart, not expired."""
    don = unique_don()
    seen: list[str] = []
    all_seen = asyncio.Event()
    nodes = await lossy_nodes(own_server.url, don, seen, all_seen)
    gateway_nc = await connect(own_server.url, actor="gateway")
    settings = GatewaySettings(
        don=don,
        handler=HandlerConfig(
            request_timeout_s=TIMEOUT_S, global_rate=GENEROUS, per_node_rate=GENEROUS
        ),
        sweep_interval_s=0.5,
        drain_timeout_s=1.0,
    )
    gateway = GatewayActor(
        gateway_nc, settings, StaticMembership(DonConfig(name=don, f=1, members=MEMBERS))
    )
    await gateway.start()
    try:
        started = time.monotonic()
        serving = asyncio.create_task(gateway.serve(rpc_body("crash-1")))
        await asyncio.wait_for(all_seen.wait(), 5)
        assert sorted(seen) == sorted(MEMBERS)  # every node holds it
        os.kill(own_server.pid, signal.SIGKILL)
        await asyncio.sleep(ANSWER_AFTER_S + 0.5)  # the answers are published and lost now
        await own_server.start()
        restarted = time.monotonic()
        reply = await asyncio.wait_for(serving, TIMEOUT_S + 5)
        elapsed = time.monotonic() - started
        print(f"reconnect: answered {time.monotonic() - restarted:.3f}s after the restart")
        assert reply.code is ErrorCode.NoError, reply.body
        assert json.loads(reply.body)["result"] == {"ok": True}
        assert elapsed < TIMEOUT_S / 2, elapsed  # answered after the restart, not at expiry
        assert len(seen) >= 2 * len(MEMBERS) - 1  # the re-sent copies reached the nodes
    finally:
        await gateway.stop()
        await gateway_nc.close()
        for nc in nodes:
            await nc.close()
