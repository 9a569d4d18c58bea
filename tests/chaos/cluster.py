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
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.cli.node import wait_ready
from workers.protocol import binding
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
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"  # the example vault's owner

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


# --- requests -----------------------------------------------------------------------------------


def echo_payload(text: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value=text))
    return packed


def echo_request(chain: TestChain, request_id: str) -> bytes:
    """A validly attested capability call to the reference echo; the text is the request id."""
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=echo_payload(request_id))
    params: dict[str, Any] = {
        "workflow_id": "wf-chaos",
        "owner": "0xowner",
        "execution_id": "ab" * 32,
        "reference_id": request_id,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload.SerializeToString()).decode(),
    }
    return attested(chain, rpc.MethodCapabilityExec, params, request_id)


def secrets_request(chain: TestChain, request_id: str, enclave_key: str, count: int = 1) -> bytes:
    """A validly attested secrets.get of the example vault's API_KEY, `count` times over."""
    params: dict[str, Any] = {
        "workflow_id": "wf-chaos",
        "owner": OWNER,
        "execution_id": "cd" * 32,
        "secrets": [{"key": "API_KEY", "namespace": "main"}] * count,
        "enclave_public_key": enclave_key,
    }
    return attested(chain, rpc.MethodSecretsGet, params, request_id)


def attested(chain: TestChain, method: str, params: dict[str, Any], request_id: str) -> bytes:
    bound = binding.bind(method, json.dumps(params).encode())
    params = {
        **params,
        "attestation": base64.b64encode(chain.document(user_data=bound.user_data)).decode(),
    }
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    ).encode()


def echo_is_correct(request_id: str, body: dict[str, Any]) -> bool:
    """The echo's answer carries back exactly the text this request sent."""
    result = body.get("result")
    if not isinstance(result, dict) or "payload" not in result:
        return False
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(result["payload"]))
    return response.payload == echo_payload(request_id)


def secrets_is_correct(request_id: str, body: dict[str, Any]) -> bool:
    result = body.get("result")
    if not isinstance(result, dict) or not result.get("secrets"):
        return False
    entry = result["secrets"][0]
    return bool(
        entry["id"]["key"] == "API_KEY" and entry["ciphertext"] and entry["encrypted_shares"]
    )


# --- open-loop load -------------------------------------------------------------------------------


@dataclass
class Figures:
    """What happened to every request of one run. `spec_error`: the spec's answer to a valid
    request under a fault (-32603 "internal error", or a capability's `{"error": ...}` result);
    `lost`: no answer at all within the budget and margin; `wrong`: any other answer; `late`:
    answered after budget + margin."""

    sent: int = 0
    correct: int = 0
    spec_error: int = 0
    no_responders: int = 0
    lost: int = 0
    wrong: int = 0
    late: int = 0
    latencies_s: list[float] = field(default_factory=list)
    wrong_samples: list[str] = field(default_factory=list)
    in_flight: int = 0

    @property
    def answered(self) -> int:
        return self.correct + self.spec_error + self.wrong

    def median_ms(self) -> float:
        ordered = sorted(self.latencies_s)
        return round(ordered[len(ordered) // 2] * 1000, 1) if ordered else 0.0

    def max_ms(self) -> float:
        return round(max(self.latencies_s, default=0.0) * 1000, 1)

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "correct": self.correct,
            "spec_error": self.spec_error,
            "no_responders": self.no_responders,
            "lost": self.lost,
            "wrong": self.wrong,
            "late": self.late,
            "median_ms": self.median_ms(),
            "max_ms": self.max_ms(),
        }


Check = Callable[[str, dict[str, Any]], bool]
"""Whether a success answer is the right one for this request id."""
Make = Callable[[str], tuple[bytes, Check]]
"""A request id in, the request bytes and the check of its answer out."""


async def _one(
    nc: Client,
    raw: bytes,
    request_id: str,
    check: Callable[[str, dict[str, Any]], bool],
    figures: Figures,
) -> None:
    started = time.monotonic()
    figures.in_flight += 1
    try:
        reply = await nc.request(subjects.rpc(DON, NODE), raw, timeout=BUDGET_S + MARGIN_S + 2.0)
    except NoRespondersError:
        figures.no_responders += 1
        return
    except (NatsTimeout, TimeoutError):
        figures.lost += 1
        return
    except Exception as exc:  # a connection lost under the request (a server crash)
        figures.lost += 1
        figures.wrong_samples.append(f"{request_id}: {exc!r}"[:200])
        return
    finally:
        figures.in_flight -= 1
    took = time.monotonic() - started
    figures.latencies_s.append(took)
    if took > BUDGET_S + MARGIN_S:
        figures.late += 1
    body = json.loads(reply.data)
    error = body.get("error")
    if error is None and check(request_id, body):
        figures.correct += 1
    elif error == {"code": rpc.ErrInternal, "message": rpc.INTERNAL_ERROR_MESSAGE}:
        figures.spec_error += 1
    elif error is None and list(body.get("result") or {}) == ["error"]:
        # PROTOCOL 2.4: a capability call that failed (its DON died holding it and the call
        # timed out) is a success envelope whose result carries the capability's error.
        figures.spec_error += 1
    else:
        figures.wrong += 1
        figures.wrong_samples.append(reply.data[:200].decode(errors="replace"))


async def open_loop(
    nc: Client,
    make: Make,
    *,
    rate: float,
    duration_s: float,
    figures: Figures | None = None,
    prefix: str = "r",
) -> Figures:
    """Send `rate` requests a second for `duration_s` (open loop: a slow answer does not slow
    the sending), then wait for every answer (each bounded by budget + margin + 2 s)."""
    figures = figures if figures is not None else Figures()
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    count = int(rate * duration_s)
    for i in range(count):
        at = started + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        request_id = f"{prefix}-{i}"
        raw, check = make(request_id)
        figures.sent += 1
        tasks.append(asyncio.create_task(_one(nc, raw, request_id, check, figures)))
    await asyncio.gather(*tasks)
    return figures


def report(name: str, figures: Figures, **extra: Any) -> dict[str, Any]:
    """Print one run's figures (pytest -s or -rA shows them) and append them to
    $RELAY_CHAOS_REPORT (JSON lines) when set: docs/reliability.md quotes such a run."""
    line = {"test": name, **figures.summary(), **extra}
    print(json.dumps(line))
    target = os.environ.get("RELAY_CHAOS_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(line) + "\n")
    return line


async def until(
    probe: Callable[[], Awaitable[bool]], timeout_s: float, every_s: float = 0.2
) -> float:
    """Poll `probe` until it is true (bounded); the seconds it took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if await probe():
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s}s")
        await asyncio.sleep(every_s)
