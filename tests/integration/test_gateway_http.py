"""The HTTP front on a real loopback socket, served by a gateway on a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.integration.gateway_fakes import (
    delayed,
    fake_don,
    honest,
    rpc_body,
    running_gateway,
    unique_don,
)
from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.http import HttpFront
from workers.runtime.natsserver import NatsServer

MEMBERS = ("0x0000", "0x0001", "0x0002", "0x0003")


@asynccontextmanager
async def http_gateway(
    nats_server: NatsServer, *, max_body_bytes: int = 1024 * 1024, delay_s: float = 0.0
) -> AsyncIterator[str]:
    """A gateway with four honest fake nodes behind an HTTP front; yields the base URL."""
    don = unique_don()
    behaviour = delayed(delay_s, honest()) if delay_s else honest()
    async with (
        fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, behaviour)),
        running_gateway(nats_server.url, don, MEMBERS) as gateway,
    ):
        front = HttpFront(gateway.serve, host="127.0.0.1", port=0, max_body_bytes=max_body_bytes)
        await front.start()
        try:
            yield f"http://127.0.0.1:{front.port}"
        finally:
            await front.close()


async def post(url: str, body: bytes) -> tuple[int, dict[str, Any], str]:
    async with aiohttp.ClientSession() as session, session.post(url + "/", data=body) as resp:
        text = await resp.text()
        return resp.status, json.loads(text), resp.headers.get("Content-Type", "")


async def test_a_post_gets_the_quorum_answer_with_200(nats_server: NatsServer) -> None:
    """A valid secrets.get request returns the agreed envelope as application/json."""
    async with http_gateway(nats_server) as url:
        status, body, content_type = await post(url, rpc_body("h-1"))
        assert status == 200
        assert content_type.startswith("application/json")
        assert body == {
            "jsonrpc": "2.0",
            "id": "h-1",
            "method": "confidential.secrets.get",
            "result": {"payload": "result"},
        }


async def test_a_body_that_is_not_json_gets_400_and_a_parse_error(nats_server: NatsServer) -> None:
    """Not JSON: -32700 `user message parse error: invalid JSON...`."""
    async with http_gateway(nats_server) as url:
        status, body, _ = await post(url, b"hello")
        assert status == 400
        assert body["error"]["code"] == -32700
        assert body["error"]["message"].startswith("user message parse error: invalid JSON")


async def test_json_that_is_not_json_rpc_gets_400(nats_server: NatsServer) -> None:
    """A JSON object without jsonrpc 2.0 is a parse error naming the version."""
    async with http_gateway(nats_server) as url:
        status, body, _ = await post(url, b'{"id":"x","method":"confidential.secrets.get"}')
        assert status == 400
        assert "jsonrpc version" in body["error"]["message"]


async def test_a_body_over_the_size_limit_gets_413(nats_server: NatsServer) -> None:
    """A 2 KiB body against a 1 KiB limit is refused before parsing, with a JSON-RPC error."""
    async with http_gateway(nats_server, max_body_bytes=1024) as url:
        big = rpc_body("big", params={"pad": "x" * 2048})
        status, body, _ = await post(url, big)
        assert status == 413
        assert body["error"] == {
            "code": -32700,
            "message": "user message parse error: request body is larger than 1024 bytes",
            "data": None,
        }


async def test_bad_ids_get_the_spec_errors(nats_server: NatsServer) -> None:
    """Empty id: -32600; 201-byte id: -32700 from the framework check; both with 400."""
    async with http_gateway(nats_server) as url:
        status, body, _ = await post(url, rpc_body(""))
        assert (status, body["error"]["code"]) == (400, -32600)
        assert body["error"]["message"] == "request ID cannot be empty"
        status, body, _ = await post(url, rpc_body("x" * 201))
        assert (status, body["error"]["code"]) == (400, -32700)
        assert body["error"]["message"].endswith(
            "request ID is too long: 201. max is 200 characters"
        )


async def test_a_duplicate_id_over_http_gets_400(nats_server: NatsServer) -> None:
    """Two concurrent POSTs with one id: the second is refused, the first answered."""
    async with http_gateway(nats_server, delay_s=0.2) as url:
        first = asyncio.create_task(post(url, rpc_body("dup")))
        await asyncio.sleep(0.05)
        status, body, _ = await post(url, rpc_body("dup"))
        assert (status, body["error"]["message"]) == (400, "request ID already exists: dup")
        assert (await first)[0] == 200


async def test_a_legacy_message_and_a_foreign_method_get_400(nats_server: NatsServer) -> None:
    """Legacy format: -32600 fixed text; another service's method: -32601."""
    async with http_gateway(nats_server) as url:
        status, body, _ = await post(url, b'{"body":{"message_id":"1"},"signature":"00"}')
        assert (status, body["error"]["code"]) == (400, -32600)
        assert body["error"]["message"] == (
            "confidential relay handler does not support legacy messages"
        )
        foreign = b'{"jsonrpc":"2.0","id":"f","method":"vault.secrets.get","params":{}}'
        status, body, _ = await post(url, foreign)
        assert (status, body["error"]["code"]) == (400, -32601)


async def test_healthz_reports_readiness(nats_server: NatsServer) -> None:
    """GET /healthz is 200 while ready and 503 when not."""
    ready = True

    async def serve(body: bytes) -> GatewayReply:
        return GatewayReply(body=b"{}", code=ErrorCode.NoError)

    front = HttpFront(serve, port=0, ready=lambda: ready)
    await front.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{front.port}/healthz") as resp:
                assert resp.status == 200
            ready = False
            async with session.get(f"http://127.0.0.1:{front.port}/healthz") as resp:
                assert resp.status == 503
    finally:
        await front.close()


async def test_livez_and_readyz_follow_their_own_conditions() -> None:
    """/readyz follows readiness and /livez liveness, each on its own, with the failing check named."""
    state = {"ready": False, "live": True}

    async def serve(body: bytes) -> GatewayReply:
        return GatewayReply(body=b"{}", code=ErrorCode.NoError)

    front = HttpFront(serve, port=0, ready=lambda: state["ready"], live=lambda: state["live"])
    await front.start()
    base = f"http://127.0.0.1:{front.port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def status(path: str) -> tuple[int, dict[str, Any]]:
                async with session.get(base + path) as resp:
                    return resp.status, await resp.json()

            assert (await status("/livez"))[0] == 200
            code, body = await status("/readyz")
            assert (code, body["checks"]) == (503, {"gateway": "cannot serve"})
            state["ready"] = True
            assert (await status("/readyz"))[0] == 200
            state["live"] = False
            code, body = await status("/livez")
            assert (code, body["checks"]) == (503, {"gateway": "NATS connection closed"})
    finally:
        await front.close()


async def test_a_failing_serve_gives_a_sanitised_500() -> None:
    """An unexpected exception becomes -32603 `internal error`, its text stays in the log."""

    async def serve(body: bytes) -> GatewayReply:
        raise RuntimeError("secret detail")

    front = HttpFront(serve, port=0)
    await front.start()
    try:
        status, body, _ = await post(f"http://127.0.0.1:{front.port}", b"{}")
        assert status == 500
        assert body["error"] == {"code": -32603, "message": "internal error", "data": None}
    finally:
        await front.close()
