"""`relay up` supervises its actors: killed ones (kill -9 by PID) are logged, restarted, given up on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas import subjects
from workers.cli.health import probe
from workers.runtime.bus import connect, request
from workers.runtime.credentials import credentials_for

DON, NODE = "relay-don", "node-0"
MAX_DEATHS = 3


class Up:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[str] = []
        # A thread reads stdout: a select() on the pipe misses lines already in Python's buffer.
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put("")  # EOF

    def read_until(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """The first stdout line from now on matching `pattern` (bounded wait)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} within {timeout_s}s: {self.lines[-8:]}"
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line, f"relay up closed stdout before {pattern!r}: {self.lines[-8:]}"
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def health_port(self, actor: str) -> int:
        for line in self.lines:
            found = re.search(rf"health +{actor} +http://127.0.0.1:(\d+)/livez", line)
            if found:
                return int(found.group(1))
        raise AssertionError(self.lines)

    def pid_of(self, actor: str) -> int:
        pids = [int(m) for line in self.lines for m in re.findall(rf"{actor} \(pid (\d+)\)", line)]
        return pids[-1]

    @property
    def nats_url(self) -> str:
        for line in self.lines:
            found = re.search(r"embedded nats-server (nats://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError(self.lines)

    def log_entries(self) -> list[dict[str, Any]]:
        # JSON log lines; `relay up`'s own one-line verdicts for the operator are plain text.
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def deaths_logged(self, actor: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.log_entries()
            if e.get("actor_name") == actor and " died " in e.get("msg", "")
        ]


def free_block(size: int) -> int:
    """The first of `size` consecutive loopback ports that are free now (a few tries)."""
    for _ in range(50):
        base = random.randint(20_000, 60_000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + size):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise AssertionError("no free block of ports")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    log = tmp_path / "stderr.jsonl"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.cli",
                "up",
                "--metrics-port",
                "0",
                "--max-deaths",
                str(MAX_DEATHS),
                "--death-window",
                "300",
                "--health-port-base",
                str(free_block(7)),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
    running = Up(proc, log)
    try:
        running.read_until(r"^Ctrl-C")
        yield running
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


async def _unsupported_method(url: str) -> dict[str, Any]:
    """A request the ingress answers by itself (no attestation needed): -32601."""
    user, password = credentials_for("gateway")
    nc = await connect(url, actor="gateway", user=user, password=password)
    try:
        raw = json.dumps({"jsonrpc": "2.0", "id": "sup-1", "method": "x.y", "params": {}})
        answer: dict[str, Any] = json.loads(
            await request(nc, subjects.rpc(DON, NODE), raw.encode(), timeout_s=10)
        )
        return answer
    finally:
        await nc.close()


async def test_a_killed_actor_is_logged_at_once_restarted_and_serves_again(up: Up) -> None:
    """kill -9 of the ingress: an error line names it and the signal, a new pid serves requests
    and answers the same health port."""
    port = up.health_port("ingress")
    assert (await asyncio.to_thread(probe, "127.0.0.1", port, ready=True, timeout_s=2.0))[0]
    before = up.pid_of("ingress")
    killed_at = time.monotonic()
    os.kill(before, signal.SIGKILL)
    found = up.read_until(r"actor ingress restarted \(pid (\d+)\)")
    after = int(found.group(1))
    assert after != before
    up.read_until(rf"actor ingress ready again \(pid {after}\)")
    ready_s = time.monotonic() - killed_at
    deaths = up.deaths_logged("ingress")
    assert len(deaths) == 1, deaths
    assert deaths[0]["level"] == "ERROR"
    assert deaths[0]["pid"] == before
    assert "killed by SIGKILL" in deaths[0]["msg"]
    assert ready_s < 30
    ok, said = await asyncio.to_thread(
        probe, "127.0.0.1", up.health_port("ingress"), ready=True, timeout_s=2.0
    )
    assert ok, said  # the new ingress serves the same probe port
    answer = await _unsupported_method(up.nats_url)
    assert answer["error"] == {"code": -32601, "message": "unsupported method: x.y"}
    assert up.proc.poll() is None


def test_an_actor_that_keeps_dying_ends_relay_up_with_exit_1_and_nothing_left(up: Up) -> None:
    """Each kill is counted: two restarts, then the third death in the window stops the node with 1."""
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", "\n".join(up.lines))]
    restarts = 0
    pid = up.pid_of("verifier")
    for death in range(1, MAX_DEATHS + 1):
        os.kill(pid, signal.SIGKILL)
        if death < MAX_DEATHS:
            pid = int(up.read_until(r"actor verifier restarted \(pid (\d+)\)").group(1))
            up.read_until(rf"actor verifier ready again \(pid {pid}\)")
            pids.append(pid)
            restarts += 1
    assert up.proc.wait(timeout=60) == 1
    assert restarts == MAX_DEATHS - 1
    logged = up.deaths_logged("verifier")
    assert [e["deaths"] for e in logged] == list(range(1, MAX_DEATHS + 1))
    assert "giving up" in logged[-1]["msg"]
    assert f"relay up: actor verifier died {MAX_DEATHS} times in 300s" in up.log.read_text()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert alive == []


def test_the_embedded_server_dying_ends_relay_up_with_exit_1_and_stops_the_actors(up: Up) -> None:
    """kill -9 of the embedded nats-server: nothing can serve, so `relay up` says so and exits 1."""
    text = "\n".join(up.lines)
    server_pid = int(re.findall(r"embedded nats-server \S+ \(pid (\d+)", text)[0])
    actors = [int(p) for p in re.findall(r"\w \(pid (\d+)\)", text)]
    assert len(actors) >= 5
    os.kill(server_pid, signal.SIGKILL)
    assert up.proc.wait(timeout=60) == 1
    assert "relay up: the embedded nats-server exited" in up.log.read_text()
    deadline = time.monotonic() + 10
    alive = actors
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in actors if _alive(pid)]
        time.sleep(0.1)
    assert alive == []
