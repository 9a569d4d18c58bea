"""`relay req`: one request to a real server, the reply decoded; clear exits when there is none."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from schemas import subjects
from workers.runtime.bus import Headers, Service, connect
from workers.runtime.natsserver import NatsServer, free_port

SUBJECT = subjects.rpc("relay-don", "node-0")


async def relay_req(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "req", *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "RELAY_NATS_NO_AUTH": "1"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def echo(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A node-like responder on the rpc subject: echoes the body, says which node answered."""
    nc = await connect(nats_server.url, actor="echo-test")

    async def answer(data: bytes, headers: Headers) -> tuple[bytes, Headers]:
        return data, {"Relay-Node": "node-0", "Saw": (headers or {}).get("X-Test", "")}

    svc = Service(nc, name="req-echo", description="test")
    await svc.add_endpoint_with_headers(name="rpc", subject=SUBJECT, queue="q", handler=answer)
    await svc.start()
    try:
        yield nc
    finally:
        await svc.stop()


async def test_the_reply_is_printed_decoded_with_its_headers_and_time(
    nats_server: NatsServer, echo: Client
) -> None:
    """A JSON body comes back parsed, the subject decoded, the reply's headers shown."""
    body = '{"jsonrpc":"2.0","id":"1","method":"m"}'
    code, out, err = await relay_req(SUBJECT, body, "--nats", nats_server.url, "-H", "X-Test=yes")
    assert code == 0, err
    reply = json.loads(out)
    assert reply["body"] == json.loads(body)
    assert reply["parts"]["kind"] == "rpc"
    assert reply["headers"] == {"Relay-Node": "node-0", "Saw": "yes"}
    assert reply["elapsed_ms"] > 0


async def test_the_body_can_come_from_a_file_or_stdin(
    nats_server: NatsServer, echo: Client, tmp_path: Path
) -> None:
    """`@FILE` and `-` send those bytes."""
    path = tmp_path / "body.json"
    path.write_text('{"from":"file"}')
    code, out, _ = await relay_req(SUBJECT, f"@{path}", "--nats", nats_server.url)
    assert (code, json.loads(out)["body"]) == (0, {"from": "file"})
    code, out, _ = await relay_req(SUBJECT, "-", "--nats", nats_server.url, stdin=b'{"from":1}')
    assert (code, json.loads(out)["body"]) == (0, {"from": 1})


async def test_nobody_answering_is_exit_1_with_a_clear_line(nats_server: NatsServer) -> None:
    """No responder on the subject: NATS says so at once, and so do we."""
    code, out, err = await relay_req("relay.v1.nobody.here.rpc", "{}", "--nats", nats_server.url)
    assert (code, out) == (1, "")
    assert "nobody answers on relay.v1.nobody.here.rpc" in err


async def test_an_unreachable_server_is_exit_1_quickly() -> None:
    """A port with nothing behind it fails within the connect timeout."""
    url = f"nats://127.0.0.1:{free_port()}"
    code, _, err = await relay_req(SUBJECT, "{}", "--nats", url, "--timeout", "1")
    assert code == 1
    assert "cannot reach NATS" in err


@pytest.mark.parametrize("subject", ["relay.>", "relay.*.x", "a..b"])
async def test_a_subject_a_request_cannot_go_to_is_a_usage_error(subject: str) -> None:
    """Wildcards and empty tokens are refused before connecting."""
    code, _, err = await relay_req(subject, "{}")
    assert code == 2
    assert "invalid subject" in err


async def test_a_body_over_the_servers_limit_is_a_usage_error_in_one_line(
    nats_server: NatsServer, echo: Client, tmp_path: Path
) -> None:
    """Over max_payload: exit 2 naming both sizes, not a traceback."""
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (echo.max_payload + 1))
    code, out, err = await relay_req(SUBJECT, f"@{big}", "--nats", nats_server.url)
    assert (code, out) == (2, "")
    assert "over the server's limit" in err
    assert "Traceback" not in err


async def test_an_unusable_identity_file_is_named_in_one_line_not_a_traceback(
    nats_server: NatsServer,
) -> None:
    """RELAY_NATS_CREDS_GATEWAY pointing nowhere: exit 1, the variable and the path named."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "req", SUBJECT, "{}", "--nats", nats_server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RELAY_NATS_CREDS_GATEWAY": "/nonexistent.creds"},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "RELAY_NATS_CREDS_GATEWAY names '/nonexistent.creds'" in err.decode()
    assert "Traceback" not in err.decode()
