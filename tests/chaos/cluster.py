"""A relay node as an operator runs it, for the chaos tests: a real nats-server with the repo's
`nats.conf` (every actor its own user), the registry seeded, and each actor a `relay worker`
process, so a fault is a real signal to a real PID.

Tests are plain functions: the async NATS side (clients, the load generator) runs on a `Portal`,
an event loop on its own thread, so hypothesis can drive it example by example and a test can
kill a process at a chosen moment while the load runs. Every process started here is stopped by
its PID (SIGTERM, then SIGKILL); every request goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client

from workers.attestation.testchain import TestChain
from workers.cli.node import wait_ready
from workers.registry.devseed import seed_with_measurements
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DON, NODE = "relay-don", "node-0"
BUDGET_S = 3.0
"""The node's request budget (RELAY_REQUEST_TIMEOUT_S) in these tests: short, so that a fault's
every consequence plays out within a test's few seconds."""
MARGIN_S = 1.0
"""How much later than the budget an answer may come (scheduling on a loaded 2-core machine)."""
ACTORS = (
    "registry",
    "verifier",
    "dispatch-secrets",
    "dispatch-capability",
    "vault",
    "echo",
    "ingress",
    "ingress",  # two replicas in the queue group: one may die while the other serves
)

_T = TypeVar("_T")


class Portal:
    """An event loop on its own thread; `run` waits for one coroutine from a plain function."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="portal", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout_s: float = 60.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self, coro: Coroutine[Any, Any, _T]) -> Any:
        """Run `coro` in the background; `.result(timeout)` on the returned future waits."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Worker:
    actor: str
    proc: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident memory, from /proc (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.actor} ({self.pid})")


class Cluster:
    """One nats-server and one relay node's worker processes (see ACTORS)."""

    def __init__(self, tmp: Path, chain: TestChain) -> None:
        self.tmp = tmp
        self.chain = chain
        self.root = tmp / "root.pem"
        self.root.write_bytes(chain.root_pem)
        self.seed = tmp / "seed.json"
        self.seed.write_text(json.dumps(seed_with_measurements([chain.trusted_values_json()])))
        self.server = self._new_server()
        self.workers: list[Worker] = []

    def _new_server(self, port: int = 0, monitor_port: int = 0) -> NatsServer:
        return NatsServer(
            config_file=REPO_ROOT / "nats.conf",
            jetstream=True,
            store_dir=self.tmp / "jetstream",
            port=port,
            monitor_port=monitor_port,
        )

    @property
    def url(self) -> str:
        return self.server.url

    # --- the server ---------------------------------------------------------------------------

    def kill_server(self) -> None:
        """kill -9 of nats-server (its PID), reaped: no goodbye to any client."""
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.stop_sync()  # reaps the killed process

    def restart_server(self) -> None:
        """A new nats-server on the same ports and JetStream store, as systemd would restart it."""
        self.server = self._new_server(self.server.port, self.server.monitor_port)
        self.server.start_sync(timeout_s=30)

    # --- the workers --------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(
            RELAY_NATS_URL=self.url,
            RELAY_REQUEST_TIMEOUT_S=str(BUDGET_S),
            RELAY_STAGE_ATTEMPT_TIMEOUT_S="0.5",
            RELAY_LOG_LEVEL="WARNING",
        )
        return env

    def spawn(self, actor: str) -> Worker:
        """Start `relay worker <actor>` (not waiting for it: see `wait`)."""
        log = (self.tmp / f"{actor}.log").open("a")
        argv = ["worker", actor, "--don", DON, "--node", NODE, "--dev-root", str(self.root)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self._env(),
            start_new_session=True,
        )
        log.close()  # the child holds its own copy
        worker = Worker(actor, proc)
        self.workers.append(worker)
        return worker

    def wait(self, workers: list[Worker], timeout_s: float = 90.0) -> None:
        """Until each prints its ready line (a python start is slow on a busy machine)."""
        wait_ready({f"{w.actor}#{w.pid}": w.proc for w in workers}, timeout_s=timeout_s)

    def start(self) -> None:
        self.server.start_sync(timeout_s=30)
        from workers.node.process import seed_registry

        asyncio.run(seed_registry(self.url, self.seed))
        started = [self.spawn(actor) for actor in ACTORS]
        self.wait(started)

    def of(self, actor: str) -> list[Worker]:
        return [w for w in self.workers if w.actor == actor and w.alive()]

    def signal(self, worker: Worker, sig: signal.Signals) -> None:
        os.kill(worker.pid, sig)

    def reap(self, worker: Worker, timeout_s: float = 20.0) -> int:
        """Wait for a signalled worker to exit; its exit code."""
        code = worker.proc.wait(timeout=timeout_s)
        if worker.proc.stdout is not None:
            worker.proc.stdout.close()
        self.workers.remove(worker)
        return code

    def replace(self, worker: Worker) -> Worker:
        """Start the same actor again and wait until it serves."""
        fresh = self.spawn(worker.actor)
        self.wait([fresh])
        return fresh

    def heal(self) -> None:
        """Make the node whole again (after a test that failed midway): the server running, and
        as many live processes of each actor as ACTORS lists."""
        self.server.start_sync(timeout_s=30)  # a no-op while it runs
        for worker in [w for w in self.workers if not w.alive()]:
            self.reap(worker)
        missing = list(ACTORS)
        for worker in self.workers:
            if worker.actor in missing:
                missing.remove(worker.actor)
        if missing:
            self.wait([self.spawn(actor) for actor in missing])

    def stop(self) -> None:
        """Every worker by PID (SIGTERM, then SIGKILL after a grace), then the server."""
        for worker in list(self.workers):
            if worker.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in list(self.workers):
            try:
                worker.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                worker.proc.wait()
            if worker.proc.stdout is not None:
                worker.proc.stdout.close()
        self.workers.clear()
        self.server.cleanup()

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp.glob("*.log")))


async def client(url: str, actor: str = "gateway") -> Client:
    """A NATS client as one of nats.conf's users (the gateway by default: it sends the rpcs)."""
    user, password = credentials_for(actor)
    return await connect(url, actor=actor, user=user, password=password)
