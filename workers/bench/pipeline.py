"""`relay bench pipeline`: one relay node end to end, beside a raw NATS echo, in one run.

An embedded nats-server (no auth: the bench measures the relay, not the server's permission
checks); the node's actors each in their own process, as `relay up` runs them; the reference
vault and echo capability; and, in its own process too, a raw request/reply echo. Requests carry
real attestation documents from a test chain, one minted per request before any clock starts
(so no verdict is served from a cache and minting costs nothing measured), both methods
alternating, each with a unique reference id (capability dedupe never answers from memory).

Measured, in this order and in the same run:
- throughput at saturation (`in_flight` requests outstanding) for the node and for the echo,
  in `rounds` interleaved rounds, medians taken;
- in `latency_rounds` rounds, each: the node's latency at half its saturation throughput (open
  loop: requests sent on a fixed schedule, whether or not earlier ones were answered), then the
  echo's sequential median and one warm verification, whose sum is the floor a request cannot
  beat (it needs at least one hop and one ECDSA P-384 check). Each round's ratio p50 / floor
  is taken from figures measured seconds apart, so a machine that slows down between the node
  and the floor (it is shared) moves one round, not the verdict; the median round is reported,
  p99 is over all rounds' samples;
- the echo's latency at that same rate, open loop.

Every answer is checked: a JSON-RPC error, or a result that is not what the method returns,
fails the bench (exit 1) instead of being counted as fast.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.client import Client

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation import MeasurementIndex, TrustRoots, Verifier
from workers.attestation.testchain import TestChain
from workers.bench import current as bench_current
from workers.cli.node import wait_ready
from workers.node.process import ALL_ACTORS, NODE_ACTORS
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect, request
from workers.runtime.loop import run_loop
from workers.runtime.natsserver import NatsServer

DON, NODE = "relay-don", "node-0"
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"  # has API_KEY in the example vault file
ECHO_SUBJECT = "bench.v1.echo"
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0

TARGET_RPS, TARGET_P99_MS, TARGET_P50_FACTOR = 700.0, 15.0, 3.0


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    requests: int = 3000
    """Requests per saturation measurement (split over the rounds)."""
    seconds: float = 4.0
    """Length of the open-loop latency run, split over the latency rounds."""
    in_flight: int = 64
    rounds: int = 3
    latency_rounds: int = 3
    warmup: int = 200
    echo_samples: int = 2000
    """Sequential echo requests for the floor, split over the latency rounds."""
    current: bool = False
    """Also run a node under RELAY_PROTOCOL=current and measure it in the same rounds."""


class BenchFailed(RuntimeError):
    """A worker did not start, or a request did not get the answer its method gives."""


# --- requests ---------------------------------------------------------------------------------


def mint_requests(chain: TestChain, count: int, tag: str) -> list[bytes]:
    """`count` JSON-RPC requests, both methods alternating, each with its own attestation."""
    enclave_key = enclave_crypto.public_hex(X25519PrivateKey.generate())
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="bench"))
    payload = base64.b64encode(
        sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
    ).decode()
    out = []
    for i in range(count):
        params: dict[str, Any] = {
            "workflow_id": "wf-bench",
            "owner": OWNER,
            "execution_id": f"{i:064x}",
        }
        if i % 2:
            method = rpc.MethodCapabilityExec
            params |= {
                "reference_id": f"{tag}-{i}",
                "capability_id": "echo@1.0.0",
                "payload": payload,
            }
        else:
            method = rpc.MethodSecretsGet
            params |= {
                "secrets": [{"key": "API_KEY", "namespace": "main"}],
                "enclave_public_key": enclave_key,
            }
        bound = binding.bind(method, json.dumps(params).encode())
        params["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
        body = {"jsonrpc": "2.0", "id": f"{tag}-{i}", "method": method, "params": params}
        out.append(json.dumps(body).encode())
    return out


def check_answer(request_body: bytes, answer: bytes, *, signed: bool = False) -> None:
    """Raise BenchFailed unless `answer` is the successful result of `request_body`'s method
    (`signed`: the current protocol's signed object around it)."""
    sent = json.loads(request_body)
    try:
        got = json.loads(answer)
    except ValueError:
        raise BenchFailed(f"request {sent['id']}: answer is not JSON: {answer[:200]!r}") from None
    result = got.get("result") if isinstance(got, dict) else None
    if not isinstance(result, dict) or got.get("id") != sent["id"]:
        raise BenchFailed(f"request {sent['id']} failed: {answer[:300]!r}")
    if signed:
        signature = result.get("signature")
        if not isinstance(signature, dict) or not signature.get("signature"):
            raise BenchFailed(f"request {sent['id']}: no signature: {answer[:300]!r}")
        result = result.get("result")
        if not isinstance(result, dict):
            raise BenchFailed(f"request {sent['id']}: no signed result: {answer[:300]!r}")
    expected = "secrets" if sent["method"] == rpc.MethodSecretsGet else "payload"
    if expected not in result:
        raise BenchFailed(f"request {sent['id']}: no {expected!r} in the result: {answer[:300]!r}")


# --- load shapes ------------------------------------------------------------------------------


Check = bool | str
"""False: no check; True: the n1 result; "signed": the current protocol's signed result."""


async def _timed(nc: Client, subject: str, body: bytes, *, check: Check) -> float:
    started = time.perf_counter()
    answer = await request(nc, subject, body, timeout_s=REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if check:
        check_answer(body, answer, signed=check == "signed")
    return elapsed


async def saturate(
    nc: Client, subject: str, bodies: Sequence[bytes], in_flight: int, *, check: Check
) -> float:
    """Requests per second with `in_flight` outstanding at all times (closed loop)."""
    pending = list(reversed(bodies))

    async def worker() -> None:
        while pending:
            await _timed(nc, subject, pending.pop(), check=check)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(bodies)))))
    return len(bodies) / (time.perf_counter() - started)


async def open_loop(
    nc: Client, subject: str, bodies: Sequence[bytes], rate: float, *, check: Check
) -> list[float]:
    """Latencies of requests sent on a fixed schedule of `rate` per second (open loop)."""
    interval = 1.0 / rate
    start = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(nc, subject, body, check=check)))
    return sorted(await asyncio.gather(*tasks))


async def sequential(nc: Client, subject: str, body: bytes, count: int) -> list[float]:
    return sorted([await _timed(nc, subject, body, check=False) for _ in range(count)])


def percentile_ms(sorted_s: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of sorted seconds, in milliseconds."""
    rank = max(0, min(len(sorted_s) - 1, round(q / 100 * len(sorted_s)) - 1))
    return sorted_s[rank] * 1000


def verify_warm_ms(chain: TestChain, samples: int = 300) -> float:
    """Median of one warm verification (caches primed), as the ingress's verifier does it."""
    verifier = Verifier(TrustRoots.development(chain.root_pem))
    index = MeasurementIndex.from_sets([chain.trusted()])
    doc = chain.document(user_data=b"u" * 32)
    now = time.time()
    verifier.verify(doc, now=now, trusted=index)
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        verifier.verify(doc, now=now, trusted=index, expected_user_data=b"u" * 32)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


# --- processes --------------------------------------------------------------------------------


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,  # a Ctrl-C reaches us; we stop them by PID
    )


def _worker(actor: str, url: str, node: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "workers.cli", "worker", actor, "--nats", url,
            "--don", DON, "--node", node, "--dev-root", str(root)]  # fmt: skip


def start_processes(
    url: str, root: Path, current_key: Path | None = None
) -> dict[str, subprocess.Popen[str]]:
    """The n1 node's actors, the reference DONs and the raw echo; with `current_key`, also the
    actors of node-1 under the current protocol (named `current <actor>`)."""
    env = {**os.environ, "RELAY_NATS_NO_AUTH": "1", "RELAY_LOG_LEVEL": "ERROR"}
    env.pop("RELAY_PROTOCOL", None)  # the n1 node is n1 whatever the caller's shell says
    env.pop("RELAY_NODE_KEY", None)
    commands = {
        "raw echo": [sys.executable, "-m", "workers.bench.echo_responder", url, ECHO_SUBJECT]
    }
    envs = {name: env for name in commands}
    for actor in ALL_ACTORS:
        commands[actor] = _worker(actor, url, NODE, root)
        envs[actor] = env
    if current_key is not None:
        current_env = {**env, "RELAY_PROTOCOL": "current", "RELAY_NODE_KEY": str(current_key)}
        for actor in NODE_ACTORS:
            commands[f"current {actor}"] = _worker(actor, url, bench_current.CURRENT_NODE, root)
            envs[f"current {actor}"] = current_env
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, cmd in commands.items():
            procs[name] = _spawn(cmd, envs[name])
        wait_ready(procs, START_TIMEOUT_S)
    except RuntimeError as exc:
        stop_processes(list(procs.values()))
        raise BenchFailed(str(exc)) from exc
    except BaseException:
        stop_processes(list(procs.values()))
        raise
    return procs


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc); None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_processes(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- the run ----------------------------------------------------------------------------------


async def _seed(url: str, chain: TestChain) -> None:
    admin = await connect(url, actor="registry-admin")
    try:
        seed = seed_with_measurements([chain.trusted_values_json()])
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()


async def _until_answering(
    nc: Client, bodies: Sequence[bytes], subject: str, check: Check = True
) -> None:
    """The workers said ready; wait (bounded) until a whole request succeeds."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for body in bodies:
        while True:
            try:
                await _timed(nc, subject, body, check=check)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise BenchFailed(f"the node never answered: {exc}") from exc
                await asyncio.sleep(0.1)


SHARED_PROCESSES = ("nats-server", "vault", "echo", "bench (requester)")
"""Processes both nodes' requests go through (their CPU counts for each node's rounds)."""
CURRENT_PREFIX = "current "


def _node_pids(pids: dict[str, int], current: bool) -> dict[str, int]:
    """The processes of one node's rounds: its own actors and the shared ones."""
    return {
        name: pid
        for name, pid in pids.items()
        if name.startswith(CURRENT_PREFIX) == current or (current and name in SHARED_PROCESSES)
    }


async def _measure(
    url: str, chain: TestChain, settings: PipelineSettings, pids: dict[str, int]
) -> dict[str, Any]:
    rpc_subject = subjects.rpc(DON, NODE)
    current_subject = subjects.rpc(DON, bench_current.CURRENT_NODE)
    per_round = max(1, settings.requests // settings.rounds)
    warmup = mint_requests(chain, settings.warmup, "warm")
    rounds = [mint_requests(chain, per_round, f"sat{r}") for r in range(settings.rounds)]
    current_rounds: list[list[bytes]] = []
    echo_body = rounds[0][0]  # an echo of a real request's size
    nc = await connect(url, actor="bench")
    try:
        await _until_answering(nc, mint_requests(chain, 2, "probe"), rpc_subject)
        await saturate(nc, rpc_subject, warmup, 16, check=True)
        if settings.current:
            mint = bench_current.mint_requests
            await _until_answering(nc, mint(chain, 2, "cprobe"), current_subject, "signed")
            await saturate(nc, current_subject, mint(chain, settings.warmup, "cwarm"), 16,
                           check="signed")  # fmt: skip
            current_rounds = [mint(chain, per_round, f"csat{r}") for r in range(settings.rounds)]
        node_rps, echo_rps, current_rps = [], [], []
        for r, bodies in enumerate(rounds):
            echo_rps.append(
                await saturate(
                    nc, ECHO_SUBJECT, [echo_body] * per_round, settings.in_flight, check=False
                )
            )
            node_rps.append(await saturate(nc, rpc_subject, bodies, settings.in_flight, check=True))
            if current_rounds:
                current_rps.append(
                    await saturate(
                        nc, current_subject, current_rounds[r], settings.in_flight, check="signed"
                    )
                )
        throughput = statistics.median(node_rps)
        # Both nodes at the same rate: half of the slower one's saturation throughput.
        rate = min(throughput, statistics.median(current_rps) if current_rps else throughput) / 2
        per_latency_round = max(50, int(rate * settings.seconds / settings.latency_rounds))
        echo_per_round = max(20, settings.echo_samples // settings.latency_rounds)
        pids = {**pids, "bench (requester)": os.getpid()}
        paced_rounds = [
            mint_requests(chain, per_latency_round, f"lat{r}")
            for r in range(settings.latency_rounds)
        ]
        current_paced = [
            bench_current.mint_requests(chain, per_latency_round, f"clat{r}")
            for r in range(settings.latency_rounds if settings.current else 0)
        ]
        cpu_spent: dict[str, float] = {}
        current_cpu: dict[str, float] = {}
        pooled: list[float] = []
        current_pooled: list[float] = []
        latency_rounds = []
        current_p50s = []
        for r, paced in enumerate(paced_rounds):
            n1_pids = _node_pids(pids, current=False)
            before = {name: cpu_seconds(pid) for name, pid in n1_pids.items()}
            latencies = await open_loop(nc, rpc_subject, paced, rate, check=True)
            _add_cpu(cpu_spent, before, {n: cpu_seconds(p) for n, p in n1_pids.items()})
            if current_paced:
                cur_pids = _node_pids(pids, current=True)
                before = {name: cpu_seconds(pid) for name, pid in cur_pids.items()}
                signed_latencies = await open_loop(
                    nc, current_subject, current_paced[r], rate, check="signed"
                )
                _add_cpu(current_cpu, before, {n: cpu_seconds(p) for n, p in cur_pids.items()})
                current_pooled.extend(signed_latencies)
                current_p50s.append(percentile_ms(signed_latencies, 50))
            echo_seq = await sequential(nc, ECHO_SUBJECT, echo_body, echo_per_round)
            verify_ms = verify_warm_ms(chain)
            pooled.extend(latencies)
            latency_rounds.append(_latency_round(latencies, echo_seq, verify_ms))
        echo_at_rate = await open_loop(
            nc, ECHO_SUBJECT, [echo_body] * per_latency_round, rate, check=False
        )
    finally:
        await nc.close()
    pooled.sort()
    count = len(pooled)
    cpu = {name: round(spent / count * 1e6) for name, spent in cpu_spent.items()}
    median_round = sorted(latency_rounds, key=lambda r: r["p50_over_floor"])[
        len(latency_rounds) // 2
    ]
    p50 = statistics.median(r["p50_ms"] for r in latency_rounds)
    p99 = percentile_ms(pooled, 99)
    ratio = statistics.median(r["p50_over_floor"] for r in latency_rounds)
    report: dict[str, Any] = {
        "throughput_rps": round(throughput, 1),
        "throughput_rounds_rps": [round(x, 1) for x in node_rps],
        "echo_throughput_rps": round(statistics.median(echo_rps), 1),
        "throughput_over_echo": round(throughput / statistics.median(echo_rps), 4),
        "in_flight": settings.in_flight,
        "latency_rate_rps": round(rate, 1),
        "latency_samples": count,
        "latency_rounds": latency_rounds,
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "echo_at_rate_p50_ms": round(percentile_ms(sorted(echo_at_rate), 50), 3),
        "echo_at_rate_p99_ms": round(percentile_ms(sorted(echo_at_rate), 99), 3),
        # The floor of the median round (the one whose ratio is reported).
        "echo_p50_ms": median_round["echo_p50_ms"],
        "verify_warm_ms": median_round["verify_warm_ms"],
        "p50_over_floor": ratio,
        "request_bytes": len(echo_body),
        # Where a request's CPU goes, per process, during the latency rounds (Linux only).
        "cpu_us_per_request": cpu,
        "cpu_us_per_request_total": round(sum(cpu.values())),
        "targets": {
            "throughput_at_least_700_rps": throughput >= TARGET_RPS,
            "p99_at_most_15_ms_at_half_rate": p99 <= TARGET_P99_MS,
            "p50_at_most_3x_echo_plus_verify": ratio <= TARGET_P50_FACTOR,
        },
    }
    if settings.current:
        report["current"] = _current_report(
            current_rps, current_pooled, current_p50s, current_cpu, report, chain
        )
    return report


def _current_report(
    rps: list[float],
    pooled: list[float],
    p50s: list[float],
    cpu_spent: dict[str, float],
    n1: dict[str, Any],
    chain: TestChain,
) -> dict[str, Any]:
    """The current node's figures beside the n1 node's of the same rounds, and the step costs."""
    pooled.sort()
    throughput = statistics.median(rps)
    p50 = statistics.median(p50s)
    cpu = {
        name.removeprefix(CURRENT_PREFIX): round(spent / len(pooled) * 1e6)
        for name, spent in cpu_spent.items()
    }
    total = round(sum(cpu.values()))
    return {
        "throughput_rps": round(throughput, 1),
        "throughput_rounds_rps": [round(x, 1) for x in rps],
        "throughput_over_n1": round(throughput / n1["throughput_rps"], 4),
        "latency_samples": len(pooled),
        "p50_ms": round(p50, 3),
        "p99_ms": round(percentile_ms(pooled, 99), 3),
        "p50_minus_n1_ms": round(p50 - n1["p50_ms"], 3),
        "cpu_us_per_request": cpu,
        "cpu_us_per_request_total": total,
        "cpu_us_added_per_request": total - n1["cpu_us_per_request_total"],
        "request_bytes": len(bench_current.mint_requests(chain, 1, "size")[0]),
        # Each added step alone, in one process: what the end-to-end difference is made of.
        "step_costs_us": bench_current.step_costs(chain),
    }


def _latency_round(
    latencies: list[float], echo_seq: list[float], verify_ms: float
) -> dict[str, float]:
    p50 = percentile_ms(latencies, 50)
    echo_p50 = percentile_ms(echo_seq, 50)
    return {
        "p50_ms": round(p50, 3),
        "p99_ms": round(percentile_ms(latencies, 99), 3),
        "echo_p50_ms": round(echo_p50, 3),
        "verify_warm_ms": round(verify_ms, 3),
        "p50_over_floor": round(p50 / (echo_p50 + verify_ms), 3),
    }


def _add_cpu(
    spent: dict[str, float], before: dict[str, float | None], after: dict[str, float | None]
) -> None:
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None:
            spent[name] = spent.get(name, 0.0) + end - start


def run(settings: PipelineSettings | None = None) -> dict[str, Any]:
    settings = settings or PipelineSettings()
    chain = TestChain()
    server = NatsServer(jetstream=True)
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        root = Path(tmp) / "root.pem"
        root.write_bytes(chain.root_pem)
        server.start_sync()
        try:
            # Seeded before the actors start, so each one's registry view loads at once.
            asyncio.run(_seed(server.url, chain))
            key = bench_current.write_key(Path(tmp)) if settings.current else None
            procs = start_processes(server.url, root, key)
            pids = {"nats-server": server.pid} | {name: p.pid for name, p in procs.items()}
            try:
                return run_loop(_measure(server.url, chain, settings, pids))
            finally:
                stop_processes(list(procs.values()))
        finally:
            server.cleanup()


def render(result: dict[str, Any]) -> str:
    targets = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["targets"].items())
    lines = [
        "relay bench pipeline: one node, each actor its own process; both methods;"
        " a fresh test-chain attestation per request",
        f"  saturation ({result['in_flight']} in flight): node {result['throughput_rps']:.0f} req/s,"
        f" raw echo {result['echo_throughput_rps']:.0f} req/s"
        f" (node/echo {result['throughput_over_echo']:.3f}); rounds {result['throughput_rounds_rps']}",
        f"  at {result['latency_rate_rps']:.0f} req/s ({result['latency_samples']} requests):"
        f" node p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms;"
        f" raw echo p50 {result['echo_at_rate_p50_ms']:.2f} ms, p99 {result['echo_at_rate_p99_ms']:.2f} ms",
        f"  floor (median round): raw echo p50 {result['echo_p50_ms']:.3f} ms (sequential)"
        f" + warm verify {result['verify_warm_ms']:.3f} ms;"
        f" node p50 = {result['p50_over_floor']:.2f} x floor (median of rounds)",
        "  latency rounds (p50 ms / floor ms / ratio): "
        + "; ".join(
            f"{r['p50_ms']:.2f} / {r['echo_p50_ms'] + r['verify_warm_ms']:.3f}"
            f" / {r['p50_over_floor']:.2f}"
            for r in result["latency_rounds"]
        ),
        "  CPU per request at that rate (µs): "
        + ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_request"].items())
        + f"; total {result['cpu_us_per_request_total']}",
        f"  targets: {targets}",
    ]
    if "current" in result:
        lines.extend(_render_current(result["current"], result))
    return "\n".join(lines)


def _render_current(cur: dict[str, Any], n1: dict[str, Any]) -> list[str]:
    steps = cur["step_costs_us"]
    return [
        "  RELAY_PROTOCOL=current, same rounds (node-1: signed answers, EnclaveConfig,"
        " Workflow-DON authorization with F+1 = 2 signatures, DomainHash v2, memo):",
        f"    saturation: {cur['throughput_rps']:.0f} req/s"
        f" (current/n1 {cur['throughput_over_n1']:.3f}); rounds {cur['throughput_rounds_rps']}",
        f"    at {n1['latency_rate_rps']:.0f} req/s: p50 {cur['p50_ms']:.2f} ms"
        f" ({cur['p50_minus_n1_ms']:+.2f} ms vs n1), p99 {cur['p99_ms']:.2f} ms",
        "    CPU per request (µs): "
        + ", ".join(f"{k} {v}" for k, v in cur["cpu_us_per_request"].items())
        + f"; total {cur['cpu_us_per_request_total']}"
        f" ({cur['cpu_us_added_per_request']:+d} vs n1); request {cur['request_bytes']} bytes",
        "    each added step, median µs in one process: "
        + ", ".join(f"{k.removesuffix('_us')} {v}" for k, v in steps.items()),
    ]
