"""`relay gateway` as a real process: serves HTTP on loopback and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.gateway_fakes import fake_don, honest, rpc_body, unique_don
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer, free_port

MEMBERS = ("0x0000", "0x0001", "0x0002", "0x0003")
RELAY = Path(sys.executable).parent / "relay"  # the console script of this venv


async def wait_healthy(
    session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process
) -> None:
    for _ in range(200):  # bounded: 10 s
        assert proc.returncode is None, "relay gateway exited early"
        try:
            async with session.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("relay gateway did not become healthy")


async def answer_then_sigterm(cmd: list[str], port: int, request_id: str) -> bytes:
    """Run `relay gateway`, POST one request (quorum answer expected), SIGTERM it by PID; its
    stderr. The process is killed if anything fails on the way."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, url, proc)
            async with session.post(url + "/", data=rpc_body(request_id)) as resp:
                assert resp.status == 200
                assert json.loads(await resp.text())["result"] == {"payload": "result"}
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
        assert proc.returncode == 0, stderr
        return stderr
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=5)


async def test_the_gateway_command_answers_over_http_and_exits_cleanly_on_sigterm(
    nats_server: NatsServer,
) -> None:
    """POST gets the quorum answer; SIGTERM by PID makes the process exit with code 0."""
    don = unique_don()
    port = free_port()
    cmd = [
        str(RELAY),
        "gateway",
        "--nats",
        nats_server.url,
        "--don",
        don,
        "--members",
        ",".join(MEMBERS),
        "--http",
        f"127.0.0.1:{port}",
        "--log-level",
        "WARNING",
    ]
    async with fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())):
        await answer_then_sigterm(cmd, port, "cli-1")


def test_a_bad_don_configuration_exits_with_code_2() -> None:
    """F too large for the member list is refused before connecting anywhere."""
    result = subprocess.run(
        [str(RELAY), "gateway", "--members", "a,b", "--f", "2"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"cannot reach quorum" in result.stderr


async def test_the_gateway_can_follow_the_dons_members_in_the_registry(
    nats_server: NatsServer,
) -> None:
    """`--members-from-registry`: F and members from the bucket, the quorum answer over HTTP."""
    admin = await connect(nats_server.url, actor="registry-admin")
    try:
        seed = seed_with_measurements(
            [b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'], members=MEMBERS, f=1
        )
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()
    port = free_port()
    cmd = [str(RELAY), "gateway", "--nats", nats_server.url, "--don", "relay-don"]
    cmd += ["--members-from-registry", "--http", f"127.0.0.1:{port}", "--log-level", "INFO"]
    async with fake_don(nats_server.url, "relay-don", dict.fromkeys(MEMBERS, honest())):
        stderr = await answer_then_sigterm(cmd, port, "cli-registry")
    assert b"F=1, 4 members (from the registry)" in stderr


async def test_a_gateway_whose_don_is_not_in_the_registry_is_live_but_not_ready(
    nats_server: NatsServer,
) -> None:
    """Failing closed (its DON unknown to the registry), the gateway answers /livez 200 and
    /readyz 503, so a load balancer sends enclaves elsewhere."""
    admin = await connect(nats_server.url, actor="registry-admin")
    try:
        seed = seed_with_measurements([b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'], members=MEMBERS)
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()
    port = free_port()
    cmd = [str(RELAY), "gateway", "--nats", nats_server.url, "--don", "not-in-the-registry"]
    cmd += ["--members-from-registry", "--http", f"127.0.0.1:{port}"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):  # bounded: 15 s for the process to listen
                assert proc.returncode is None, "relay gateway exited early"
                try:
                    async with session.get(url + "/livez") as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            async with session.get(url + "/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["checks"] == {"gateway": "cannot serve"}
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)


def test_f_with_members_from_the_registry_is_refused() -> None:
    """The registry holds F: giving --f as well is a usage error, before connecting anywhere."""
    result = subprocess.run(
        [str(RELAY), "gateway", "--members-from-registry", "--f", "1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert b"--f goes with --members" in result.stderr


@pytest.mark.parametrize("option", ["--sweep-interval", "--drain-timeout"])
@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf"])
def test_a_sweep_or_drain_time_that_is_not_finite_and_positive_exits_with_code_2(
    option: str, value: str
) -> None:
    """nan would never expire a request (or never finish a drain), 0 would spin: refused."""
    result = subprocess.run(
        [str(RELAY), "gateway", "--members", "a,b,c,d", option, value],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert b"must be a finite number of seconds > 0" in result.stderr


async def test_a_gateway_whose_limits_cannot_carry_its_expected_rate_warns_at_start(
    nats_server: NatsServer,
) -> None:
    """Upstream's default limits with --expected-rps 40 over 4 members: both limits named."""
    don = unique_don()
    port = free_port()
    cmd = [str(RELAY), "gateway", "--nats", nats_server.url, "--don", don]
    cmd += ["--members", ",".join(MEMBERS), "--http", f"127.0.0.1:{port}"]
    cmd += ["--expected-rps", "40", "--log-level", "INFO"]
    async with fake_don(nats_server.url, don, dict.fromkeys(MEMBERS, honest())):
        stderr = await answer_then_sigterm(cmd, port, "cli-sizing-low")
    warnings = [
        json.loads(line)["msg"]
        for line in stderr.splitlines()
        if b"gateway sizing" in line and json.loads(line)["level"] == "WARNING"
    ]
    assert len(warnings) == 2, stderr
    assert "--node-rate 10rps:10 cannot carry 40 req/s" in warnings[0]
    assert "--global-rate 50rps:10 cannot carry 40 req/s" in warnings[1]
    assert b"rate limits carry at most 10 req/s" in stderr


async def test_a_gateway_sized_from_the_registry_for_its_rate_does_not_warn(
    nats_server: NatsServer,
) -> None:
    """Recommended limits for 40 req/s over the registry's 4 members: no sizing warning."""
    admin = await connect(nats_server.url, actor="registry-admin")
    try:
        seed = seed_with_measurements(
            [b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'], members=MEMBERS, f=1
        )
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()
    port = free_port()
    cmd = [str(RELAY), "gateway", "--nats", nats_server.url, "--don", "relay-don"]
    cmd += ["--members-from-registry", "--http", f"127.0.0.1:{port}", "--log-level", "INFO"]
    cmd += ["--expected-rps", "40", "--node-rate", "80rps:40", "--global-rate", "160rps:160"]
    async with fake_don(nats_server.url, "relay-don", dict.fromkeys(MEMBERS, honest())):
        stderr = await answer_then_sigterm(cmd, port, "cli-sizing-ok")
    assert b'"level": "WARNING"' not in stderr, stderr
    assert b"the rate limits carry 40 req/s with headroom" in stderr
