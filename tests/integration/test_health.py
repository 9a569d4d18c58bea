"""Health probes of a real `relay worker` process on a real nats-server with the repo's nats.conf."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from workers.cli.health import probe
from workers.node.process import REPO_ROOT, seed_registry
from workers.registry.devseed import EXAMPLE_SEED
from workers.runtime.natsserver import NatsServer, free_port

GRACE_S = 1.0


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    def ask(self, *, ready: bool, timeout_s: float = 2.0) -> tuple[bool, dict[str, Any] | str]:
        ok, said = probe("127.0.0.1", self.port, ready=ready, timeout_s=timeout_s)
        try:
            return ok, json.loads(said)
        except ValueError:
            return ok, said


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll `condition` (bounded) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A server of its own: the tests stop and restart it."""
    srv = NatsServer(config_file=REPO_ROOT / "nats.conf", jetstream=True)
    srv.start_sync()
    try:
        yield srv
    finally:
        srv.cleanup()


@contextlib.contextmanager
def worker(actor: str, server: NatsServer) -> Iterator[Worker]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_NATS_URL=server.url,
        RELAY_HEALTH_PORT=str(port),
        RELAY_HEALTH_DISCONNECTED_GRACE_S=str(GRACE_S),
        RELAY_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", actor],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        yield Worker(proc, port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def answers(w: Worker) -> bool:
    return w.ask(ready=False)[0]


REGISTRY_READERS = ("ingress", "dispatch-secrets", "dispatch-capability", "registry")


def test_actors_with_a_registry_view_are_live_but_not_ready_until_the_registry_loads(
    server: NatsServer,
) -> None:
    """Before the registry bucket exists every actor that keeps a registry view is live and not
    ready (the registry named); once the registry is loaded each is ready, with no restart."""
    with contextlib.ExitStack() as stack:
        workers = [stack.enter_context(worker(actor, server)) for actor in REGISTRY_READERS]
        for w in workers:
            wait_for(partial(_started, w), "the service started")
            assert answers(w)
            ok, said = w.ask(ready=True)
            assert not ok
            assert isinstance(said, dict)
            assert said["checks"]["nats"] == "ok"
            assert said["checks"]["registry"].startswith("registry view not loaded"), said
        asyncio.run(seed_registry(server.url, EXAMPLE_SEED))
        for w in workers:
            wait_for(partial(_ready, w), "ready after the registry loads")
            assert w.ask(ready=True)[1]["checks"] == {  # type: ignore[index]
                "nats": "ok",
                "service": "ok",
                "registry": "ok",
            }


def _started(w: Worker) -> bool:
    return _checks(w).get("service") == "ok"


def _ready(w: Worker) -> bool:
    return w.ask(ready=True)[0]


def _checks(w: Worker) -> dict[str, str]:
    _, said = w.ask(ready=True)
    return said["checks"] if isinstance(said, dict) else {}


def test_a_wedged_worker_is_not_live(server: NatsServer) -> None:
    """A stopped (SIGSTOP) verifier answers no probe within the timeout; resumed, it is live again."""
    with worker("verifier", server) as w:
        wait_for(lambda: w.ask(ready=True)[0], "the verifier is ready (it needs no registry)")
        os.kill(w.proc.pid, signal.SIGSTOP)
        ok, said = w.ask(ready=False, timeout_s=1.0)
        assert not ok
        assert "no answer" in str(said)
        os.kill(w.proc.pid, signal.SIGCONT)
        wait_for(lambda: answers(w), "live again once resumed")


def test_a_worker_cut_off_from_nats_is_not_ready_at_once_and_not_live_after_the_grace(
    server: NatsServer,
) -> None:
    """Server gone: not ready (disconnected) at once, not live past the grace; server back: both again."""
    with worker("verifier", server) as w:
        wait_for(lambda: w.ask(ready=True)[0], "the verifier is ready")
        server.stop_sync()
        wait_for(lambda: _checks(w).get("nats", "").startswith("disconnected"), "not ready")
        assert answers(w)  # within the grace: the client reconnects on its own
        wait_for(lambda: not answers(w), f"not live after {GRACE_S}s disconnected")
        said = w.ask(ready=False)[1]
        assert "disconnected from NATS" in said["checks"]["nats"]  # type: ignore[index]
        server.start_sync()
        wait_for(lambda: w.ask(ready=True)[0], "ready again once the server is back")
        assert answers(w)


def test_the_exec_probe_exits_0_when_healthy_and_1_when_not(server: NatsServer) -> None:
    """`relay health` is the exec form of the same probe: 0 for 200, 1 for 503 or no answer."""
    with worker("ingress", server) as w:
        wait_for(lambda: answers(w), "the ingress answers")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}

        def run(*extra: str) -> int:
            argv = [sys.executable, "-m", "workers.cli", "health", "--port", str(w.port), *extra]
            return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode

        assert run() == 0
        assert run("--ready") == 1  # no registry bucket: not ready
        light = [sys.executable, "-m", "workers.cli.health", "--port", str(w.port)]
        assert subprocess.run(light, env=env, capture_output=True, timeout=30).returncode == 0
        light_ready = [*light, "--ready"]
        assert subprocess.run(light_ready, env=env, capture_output=True, timeout=30).returncode == 1
        free = free_port()
        refused = [sys.executable, "-m", "workers.cli", "health", "--port", str(free)]
        assert subprocess.run(refused, env=env, capture_output=True, timeout=30).returncode == 1


def test_the_light_exec_probe_loads_neither_nats_nor_aiohttp() -> None:
    """`python -m workers.cli.health` stays a small interpreter start (it runs every probe period)."""
    code = (
        "import sys, runpy; sys.argv = ['x', '--help']\n"
        "try:\n    runpy.run_module('workers.cli.health', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nats', 'aiohttp')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
