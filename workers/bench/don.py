"""`relay bench don`: the whole relay DON through the gateway's HTTP front, beside one node.

On one embedded nats-server (no auth, as `relay bench pipeline`): four relay nodes, each actor
its own process as `relay up` runs them, the reference vault and echo capability (one of each,
serving every node), and `relay gateway` in its own process with its HTTP front on loopback.
Requests are `relay bench pipeline`'s (both methods alternating, a fresh test-chain attestation
each, minted before any clock starts), POSTed to the gateway, which fans each one out to the
four nodes and answers on F+1 = 2 matching answers.

Measured in the same run, on the same processes:
- one node's pipeline saturation: node-0's rpc subject driven over NATS exactly as `relay bench
  pipeline` drives it (its `saturate`, `in_flight` outstanding, every answer checked);
- the DON's saturation through HTTP, `in_flight` outstanding, in `rounds` rounds interleaved
  with the node's, medians taken; their ratio;
- the DON's latency at half its saturation (open loop: a fixed schedule, whether or not earlier
  requests were answered), p50 and p99;
- errors: every DON answer is checked (HTTP 200 and the result the method gives); a wrong, failed
  or timed-out one is counted, never timed as fast.

`paced()` is the gateway sizing experiment: requests at a fixed rate through a gateway with
given rate limits, counting what was answered (docs/gateway.md, "Sizing").
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from schemas import subjects
from workers.attestation.testchain import TestChain
from workers.bench.httpload import Outcomes, http_open_loop, http_saturate, new_session, post
from workers.bench.pipeline import (
    DON,
    BenchFailed,
    _add_cpu,
    _timed,
    cpu_seconds,
    mint_requests,
    percentile_ms,
    saturate,
    stop_processes,
)
from workers.bench.pipeline import (
    _spawn as spawn,
)
from workers.cli.node import wait_ready
from workers.gateway.ratelimit import RateLimit
from workers.node.process import NODE_ACTORS, REFERENCE_ACTORS
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.loop import run_loop
from workers.runtime.natsserver import NatsServer, free_port

TARGET_RATIO, TARGET_P99_MS = 0.2, 50.0
START_TIMEOUT_S = 60.0  # 23 processes start on two shared cores
GATEWAY_REQUEST_TIMEOUT_S = 10.0
# Limits no benchmark rate reaches: saturation measures the DON, not the gateway's token buckets.
UNBOUNDED = RateLimit(rate=1_000_000.0, burst=1_000_000)


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"node-{i}" for i in range(count))


@dataclass(frozen=True, kw_only=True)
class DonSettings:
    nodes: int = 4
    requests: int = 1200
    """DON requests per saturation measurement (split over the rounds); the node gets as many."""
    seconds: float = 4.0
    """Length of the open-loop latency run at half the DON's saturation."""
    in_flight: int = 64
    rounds: int = 3
    warmup: int = 100
    sequential: int = 30
    """Requests one at a time, through the DON and to one node: the latency floor of each."""
    node_rate: RateLimit = UNBOUNDED
    global_rate: RateLimit = UNBOUNDED


@dataclass(frozen=True, kw_only=True)
class PacedSettings:
    """The sizing experiment: `count` requests at `rate_rps` through a gateway with these limits."""

    rate_rps: float
    count: int
    node_rate: RateLimit
    global_rate: RateLimit
    nodes: int = 4
    request_timeout_s: float = 10.0
    """The gateway's --request-timeout: when a request short of F+1 answers expires."""


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Don:
    url: str
    http: str
    procs: dict[str, Any]
    members: tuple[str, ...]
    log: Path

    def gateway_said(self) -> str:
        """The last line the gateway logged (why it exited), or '' if none."""
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-300:] if lines else ""


def _env() -> dict[str, str]:
    return {**os.environ, "RELAY_NATS_NO_AUTH": "1", "RELAY_LOG_LEVEL": "ERROR"}


def start_don(
    url: str,
    root: Path,
    members: tuple[str, ...],
    node_rate: RateLimit,
    global_rate: RateLimit,
    request_timeout_s: float = GATEWAY_REQUEST_TIMEOUT_S,
) -> Don:
    """Every node's actors, vault and echo, and the gateway, each its own process."""
    py = [sys.executable, "-m", "workers.cli"]
    workers: dict[str, list[str]] = {}
    for node in members:
        for actor in NODE_ACTORS:
            workers[f"{node}/{actor}"] = [*py, "worker", actor, "--nats", url, "--don", DON,
                                          "--node", node, "--dev-root", str(root)]  # fmt: skip
    for actor in REFERENCE_ACTORS:
        workers[actor] = [*py, "worker", actor, "--nats", url]
    port = free_port()
    gateway = [*py, "gateway", "--nats", url, "--don", DON, "--members", ",".join(members),
               "--http", f"127.0.0.1:{port}", "--node-rate", str(node_rate),
               "--global-rate", str(global_rate),
               "--request-timeout", str(request_timeout_s), "--sweep-interval", "1",
               "--log-level", "ERROR"]  # fmt: skip
    procs: dict[str, Any] = {}
    try:
        for name, cmd in workers.items():
            procs[name] = spawn(cmd, _env())
        # The gateway's log is kept (the workers' is not): a failed start says why.
        with (root.parent / "gateway.log").open("w") as log_file:
            procs["gateway"] = subprocess.Popen(
                gateway,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                env=_env(),
                start_new_session=True,
            )
        wait_ready({k: v for k, v in procs.items() if k != "gateway"}, START_TIMEOUT_S)
    except RuntimeError as exc:
        stop_processes(list(procs.values()))
        raise BenchFailed(str(exc)) from exc
    except BaseException:
        stop_processes(list(procs.values()))
        raise
    return Don(
        url=url,
        http=f"http://127.0.0.1:{port}/",
        procs=procs,
        members=members,
        log=root.parent / "gateway.log",
    )


async def _seed(url: str, chain: TestChain, members: tuple[str, ...]) -> None:
    admin = await connect(url, actor="registry-admin")
    try:
        seed = seed_with_measurements(
            [chain.trusted_values_json()], members=members, f=(len(members) - 1) // 3
        )
        await load_entries(admin, seed_entries_for(seed))
    finally:
        await admin.close()


async def _until_answering(session: aiohttp.ClientSession, don: Don, chain: TestChain) -> None:
    """The workers said ready; wait (bounded) until the gateway answers a whole request."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for body in mint_requests(chain, 2, "probe"):
        while True:
            if don.procs["gateway"].poll() is not None:
                raise BenchFailed(f"relay gateway exited during start: {don.gateway_said()}")
            outcomes = Outcomes(latencies=[], errors={})
            await post(session, don.http, body, outcomes)
            if outcomes.latencies:
                break
            if time.monotonic() > deadline:
                raise BenchFailed(f"the DON never answered through the gateway: {outcomes.errors}")
            await asyncio.sleep(0.2)


def _with_don(
    members: tuple[str, ...],
    node_rate: RateLimit,
    global_rate: RateLimit,
    measure: Any,
    request_timeout_s: float = GATEWAY_REQUEST_TIMEOUT_S,
) -> dict[str, Any]:
    chain = TestChain()
    server = NatsServer(jetstream=True)
    with tempfile.TemporaryDirectory(prefix="relay-bench-don-") as tmp:
        root = Path(tmp) / "root.pem"
        root.write_bytes(chain.root_pem)
        server.start_sync()
        try:
            asyncio.run(_seed(server.url, chain, members))
            don = start_don(server.url, root, members, node_rate, global_rate, request_timeout_s)
            try:
                pids = {"nats-server": server.pid} | {n: p.pid for n, p in don.procs.items()}
                result: dict[str, Any] = run_loop(measure(don, chain, pids))
                return result
            finally:
                stop_processes(list(don.procs.values()))
        finally:
            server.cleanup()


# --- the measurements ---------------------------------------------------------------------------


def _cpu_groups(spent: dict[str, float], count: int) -> dict[str, int]:
    """CPU µs per DON request, by role: the gateway, all nodes' actors, vault+echo, the server."""
    groups: dict[str, float] = {}
    for name, seconds in spent.items():
        if name.startswith("node-"):
            role = "nodes (all actors)"
        elif name in REFERENCE_ACTORS:
            role = "vault+echo"
        else:
            role = name
        groups[role] = groups.get(role, 0.0) + seconds
    return {role: round(s / count * 1e6) for role, s in groups.items()}


async def _measure(
    don: Don, chain: TestChain, settings: DonSettings, pids: dict[str, int]
) -> dict[str, Any]:
    node_subject = subjects.rpc(DON, don.members[0])
    per_round = max(1, settings.requests // settings.rounds)
    warm = mint_requests(chain, settings.warmup, "warm")
    node_warm = mint_requests(chain, settings.warmup, "nwarm")
    don_rounds = [mint_requests(chain, per_round, f"don{r}") for r in range(settings.rounds)]
    node_rounds = [mint_requests(chain, per_round, f"node{r}") for r in range(settings.rounds)]
    pids = {**pids, "bench (client)": os.getpid()}
    nc = await connect(don.url, actor="bench")
    try:
        async with new_session() as session:
            await _until_answering(session, don, chain)
            await http_saturate(session, don.http, warm, 16)
            await saturate(nc, node_subject, node_warm, 16, check=True)
            don_rps, node_rps = [], []
            errors: dict[str, int] = {}
            cpu_spent: dict[str, float] = {}
            answered = 0
            for don_bodies, node_bodies in zip(don_rounds, node_rounds, strict=True):
                node_rps.append(
                    await saturate(nc, node_subject, node_bodies, settings.in_flight, check=True)
                )
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                rps, outcomes = await http_saturate(
                    session, don.http, don_bodies, settings.in_flight
                )
                _add_cpu(cpu_spent, before, {n: cpu_seconds(p) for n, p in pids.items()})
                don_rps.append(rps)
                answered += len(don_bodies)
                _merge(errors, outcomes.errors)
            saturation = statistics.median(don_rps)
            node_saturation = statistics.median(node_rps)
            # One request at a time: the DON's floor beside one node's, on this machine now.
            seq_bodies = mint_requests(chain, settings.sequential, "seqd")
            seq_don = Outcomes(latencies=[], errors={})
            for body in seq_bodies:
                await post(session, don.http, body, seq_don)
            _merge(errors, seq_don.errors)
            seq_node = [
                await _timed(nc, node_subject, body, check=True)
                for body in mint_requests(chain, settings.sequential, "seqn")
            ]
            rate = saturation / 2
            paced = mint_requests(chain, max(20, int(rate * settings.seconds)), "lat")
            at_rate = await http_open_loop(session, don.http, paced, rate)
            _merge(errors, at_rate.errors)
    finally:
        await nc.close()
    latencies = at_rate.latencies
    # No correct answer at all: no latency to report (JSON has no NaN), and the target fails.
    p50 = round(percentile_ms(latencies, 50), 3) if latencies else None
    p99 = round(percentile_ms(latencies, 99), 3) if latencies else None
    ratio = saturation / node_saturation
    error_count = sum(errors.values())
    return {
        "saturation_rps": round(saturation, 1),
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": error_count,
        "node_saturation_rps": round(node_saturation, 1),
        "ratio": round(ratio, 4),
        "nodes": len(don.members),
        "f": (len(don.members) - 1) // 3,
        "in_flight": settings.in_flight,
        "saturation_rounds_rps": [round(x, 1) for x in don_rps],
        "node_saturation_rounds_rps": [round(x, 1) for x in node_rps],
        "latency_rate_rps": round(rate, 1),
        "latency_samples": len(paced),
        "sequential_p50_ms": _p50(seq_don.latencies),
        "node_sequential_p50_ms": _p50(seq_node),
        "requests": answered + len(seq_bodies) + len(paced),
        "error_kinds": errors,
        "gateway_limits": {
            "node_rate": str(settings.node_rate),
            "global_rate": str(settings.global_rate),
        },
        # Where a DON request's CPU goes during the saturation rounds (Linux only).
        "cpu_us_per_request": _cpu_groups(cpu_spent, answered),
        "targets": {
            "every_answer_correct": error_count == 0,
            "saturation_at_least_0.2x_one_node": ratio >= TARGET_RATIO,
            "p99_at_most_50_ms_at_half_rate": p99 is not None and p99 <= TARGET_P99_MS,
        },
    }


def _p50(latencies: list[float]) -> float | None:
    return round(percentile_ms(sorted(latencies), 50), 3) if latencies else None


def _merge(into: dict[str, int], more: dict[str, int]) -> None:
    for kind, count in more.items():
        into[kind] = into.get(kind, 0) + count


def run(settings: DonSettings | None = None) -> dict[str, Any]:
    settings = settings or DonSettings()
    if settings.nodes < 1:
        raise ValueError("a DON needs at least one node")

    async def measure(don: Don, chain: TestChain, pids: dict[str, int]) -> dict[str, Any]:
        return await _measure(don, chain, settings, pids)

    members = node_names(settings.nodes)
    return _with_don(members, settings.node_rate, settings.global_rate, measure)


def paced(settings: PacedSettings) -> dict[str, Any]:
    """`count` requests at `rate_rps` through a gateway with the given limits: what came back."""

    async def measure(don: Don, chain: TestChain, pids: dict[str, int]) -> dict[str, Any]:
        bodies = mint_requests(chain, settings.count, "paced")
        async with new_session() as session:
            await _until_answering(session, don, chain)
            # The probe used tokens; a full bucket again, as at a gateway's start.
            await asyncio.sleep(_refill_s(settings))
            outcomes = await http_open_loop(session, don.http, bodies, settings.rate_rps)
        lat = outcomes.latencies
        return {
            "rate_rps": settings.rate_rps,
            "sent": settings.count,
            "answered": len(lat),
            "errors": outcomes.error_count,
            "error_kinds": outcomes.errors,
            "p50_ms": round(percentile_ms(lat, 50), 3) if lat else None,
            "p99_ms": round(percentile_ms(lat, 99), 3) if lat else None,
            "nodes": len(don.members),
            "gateway_limits": {
                "node_rate": str(settings.node_rate),
                "global_rate": str(settings.global_rate),
            },
        }

    return _with_don(
        node_names(settings.nodes),
        settings.node_rate,
        settings.global_rate,
        measure,
        settings.request_timeout_s,
    )


def _refill_s(settings: PacedSettings) -> float:
    # Both buckets full again (the probe used tokens of each): the slower one's refill time.
    slowest = max(
        settings.node_rate.burst / settings.node_rate.rate,
        settings.global_rate.burst / settings.global_rate.rate,
    )
    return min(5.0, max(0.0, slowest))


def render(result: dict[str, Any]) -> str:
    targets = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["targets"].items())
    cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_request"].items())
    return "\n".join(
        [
            f"relay bench don: gateway (HTTP) + {result['nodes']} nodes (F={result['f']}) + vault"
            " and echo, each actor its own process; both methods; a fresh attestation per request",
            f"  saturation ({result['in_flight']} in flight): DON {result['saturation_rps']:.0f}"
            f" req/s, one node's pipeline {result['node_saturation_rps']:.0f} req/s"
            f" (DON/node {result['ratio']:.3f}); rounds DON {result['saturation_rounds_rps']},"
            f" node {result['node_saturation_rounds_rps']}",
            f"  at {result['latency_rate_rps']:.0f} req/s ({result['latency_samples']} requests):"
            f" p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms",
            f"  one request at a time: DON p50 {result['sequential_p50_ms']} ms,"
            f" one node p50 {result['node_sequential_p50_ms']} ms",
            f"  errors: {result['errors']} of {result['requests']}"
            + (f" {result['error_kinds']}" if result["errors"] else ""),
            f"  CPU per DON request at saturation (µs): {cpu}",
            f"  targets: {targets}",
        ]
    )


def render_paced(result: dict[str, Any]) -> str:
    limits = result["gateway_limits"]
    return (
        f"relay bench don --at-rate: {result['rate_rps']:g} req/s through {result['nodes']} nodes,"
        f" gateway --node-rate {limits['node_rate']} --global-rate {limits['global_rate']}:"
        f" {result['answered']}/{result['sent']} answered correctly, errors {result['error_kinds']},"
        f" p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
    )
