"""`relay worker ingress` serves its metrics on the address RELAY_METRICS_HOST names."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer, free_port


async def _seed(url: str) -> None:
    admin = await connect(url, actor="registry-admin")
    try:
        seed = seed_with_measurements([b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'])
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()


def test_the_metrics_listen_on_the_host_asked_for_and_not_on_the_default(
    nats_server: NatsServer,
) -> None:
    """RELAY_METRICS_HOST=127.0.0.2: /metrics answers there, 127.0.0.1 refuses the port."""
    asyncio.run(_seed(nats_server.url))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_NATS_NO_AUTH": "1", "RELAY_METRICS_PORT": str(port)}
    env |= {"RELAY_METRICS_HOST": "127.0.0.2", "RELAY_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "ingress", "--nats", nats_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert "ready" in proc.stdout.readline()  # bounded by the test timeout
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
