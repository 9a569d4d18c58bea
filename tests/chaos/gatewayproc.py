"""`relay gateway` as a process in front of the chaos node (HTTP on loopback), stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp

from tests.chaos.cluster import DON, NODE, Cluster, Portal
from workers.runtime.natsserver import free_port

GATEWAY_TIMEOUT_S = 8.0
"""The gateway's request timeout: above the node's 3 s budget, so a node answer is awaited."""
HTTP_TIMEOUT_S = GATEWAY_TIMEOUT_S + 4.0


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str


class GatewayRunner:
    """`relay gateway` processes for the chaos node, one at a time, stopped by PID."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.current: Gateway | None = None

    def start(self, portal: Portal) -> Gateway:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env["RELAY_NATS_URL"] = self.cluster.url
        log = (self.cluster.tmp / "gateway.log").open("a")
        argv = [
            "gateway",
            "--don",
            DON,
            "--members",
            NODE,
            "--f",
            "0",
            "--http",
            f"127.0.0.1:{self.port}",
            "--request-timeout",
            str(GATEWAY_TIMEOUT_S),
            "--sweep-interval",
            "0.5",
            "--global-rate",
            "1000rps:1000",
            "--node-rate",
            "1000rps:1000",
            "--drain-timeout",
            "10",
            "--log-level",
            "WARNING",
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.current = Gateway(proc, f"http://127.0.0.1:{self.port}")
        portal.run(self._healthy(self.current), 120)
        return self.current

    async def _healthy(self, gateway: Gateway) -> None:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 90  # a python start on a busy machine
            while time.monotonic() < deadline:
                assert gateway.proc.poll() is None, "relay gateway exited during start"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(gateway.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError("relay gateway not healthy in 90 s")

    def stop(self) -> None:
        gateway, self.current = self.current, None
        if gateway is None or gateway.proc.poll() is not None:
            return
        os.kill(gateway.proc.pid, signal.SIGTERM)
        try:
            gateway.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(gateway.proc.pid, signal.SIGKILL)
            gateway.proc.wait()
