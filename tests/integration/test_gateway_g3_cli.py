"""`relay gateway --protocol current` as a real process: its flags reach the G3 handler."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import aiohttp

from tests.integration.gateway_fakes import fake_don, silent, unique_don
from tests.integration.test_gateway_cli import RELAY, wait_healthy
from tests.integration.test_gateway_g3 import MEMBERS, request_body, signing
from workers.runtime.natsserver import NatsServer, free_port


async def test_the_current_gateway_forwards_after_its_quorum_grace_on_its_default_sweep(
    nats_server: NatsServer,
) -> None:
    """Two signers, two silent: the bundle of two comes after --quorum-grace (0.3 s) plus at
    most the 1 s default sweep, not at the 30 s expiry; SIGTERM then exits 0."""
    don, port = unique_don(), free_port()
    behaviours = {"node-0": silent, "node-1": silent, "node-2": signing(), "node-3": signing()}
    cmd = [str(RELAY), "gateway", "--nats", nats_server.url, "--don", don,
           "--members", ",".join(MEMBERS), "--http", f"127.0.0.1:{port}",
           "--protocol", "current", "--quorum-grace", "0.3"]  # fmt: skip
    async with fake_don(nats_server.url, don, behaviours):
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                await wait_healthy(session, url, proc)
                started = time.monotonic()
                async with session.post(url + "/", data=request_body("cli-g3")) as resp:
                    assert resp.status == 200
                    answer = json.loads(await resp.text())
                waited = time.monotonic() - started
            assert len(answer["result"]["responses"]) == 2
            assert 0.3 <= waited < 10
            os.kill(proc.pid, signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
            assert proc.returncode == 0, stderr
            assert b"gateway ready (current)" in stderr
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), timeout=5)


def test_an_unknown_protocol_is_a_usage_error() -> None:
    """--protocol outside n1/current, or such a RELAY_PROTOCOL, exits 2 before connecting."""
    base = [str(RELAY), "gateway", "--members", "a", "--http", "off"]
    flag = subprocess.run([*base, "--protocol", "n2"], capture_output=True, timeout=30, check=False)
    assert flag.returncode == 2
    env = {**os.environ, "RELAY_PROTOCOL": "n2"}
    from_env = subprocess.run(base, capture_output=True, timeout=30, check=False, env=env)
    assert from_env.returncode == 2
    assert b"protocol must be n1 or current" in from_env.stderr
