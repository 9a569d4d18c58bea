"""`relay up` and `relay worker <actor>`: run a relay node, all-in-one or one actor per process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from workers.cli.args import nats_servers_arg, positive_int
from workers.node.process import ALL_ACTORS, start_actor
from workers.node.supervisor import ActorDeaths, GiveUp, RestartPolicy
from workers.runtime.logs import configure as configure_logs
from workers.runtime.loop import run_loop
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings
from workers.runtime.telemetry import RelayMetrics

log = logging.getLogger("relay.up")

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SEED = str(REPO_ROOT / "deploy" / "registry.example.json")
DEFAULT_METRICS_PORT = 9464  # the OpenTelemetry Prometheus exporter's customary port


def _settings(args: argparse.Namespace) -> NodeSettings:
    return NodeSettings.from_env(
        don=args.don,
        node=args.node,
        nats_url=args.nats,
        dev_root_pem=Path(args.dev_root) if args.dev_root else None,
        metrics_port=getattr(args, "metrics_port", None),
    )


def _add_node_options(parser: argparse.ArgumentParser) -> None:
    nats_servers_arg(parser)
    parser.add_argument("--don", help="relay DON name (default: $RELAY_DON or relay-don)")
    parser.add_argument("--node", help="this node's address (default: $RELAY_NODE or node-0)")
    parser.add_argument(
        "--dev-root",
        help="PEM of a NON-AWS attestation root, for development only (loudly logged)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve the ingress's metrics for Prometheus on 127.0.0.1:PORT/metrics"
        " (default: $RELAY_METRICS_PORT; `relay up`: 9464; 0 turns it off)",
    )


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _metrics_for(actor: str, settings: NodeSettings) -> RelayMetrics | None:
    """The ingress records the relay's metrics (PROTOCOL 5.5, per-stage latency) when asked to."""
    if actor != "ingress" or not settings.metrics_port:
        return None
    from workers.runtime.telemetry import OtelRelayMetrics, install_prometheus

    # Loopback unless asked: in a pod, Prometheus scrapes from another address (0.0.0.0).
    host = os.environ.get("RELAY_METRICS_HOST") or "127.0.0.1"
    install_prometheus(settings.metrics_port, service_name=f"relay-{actor}", host=host)
    return OtelRelayMetrics()


async def _worker(args: argparse.Namespace) -> int:
    from workers.runtime import health as probes

    settings = _settings(args)
    health = probes.ProcessHealth(args.actor, disconnected_grace_s=probes.grace_from_env())
    port = probes.port_from_env(args.health_port)
    server = None
    if port is not None:
        # Up before the actor: liveness answers during a slow start, readiness says "starting".
        server = probes.HealthServer(health, host=probes.host_from_env(args.health_host), port=port)
        await server.start()
    try:
        actor = await start_actor(args.actor, settings, _metrics_for(args.actor, settings))
        health.attach(actor.nc, actor.service)
        print(f"relay worker {args.actor} ready on {settings.don}/{settings.node}", flush=True)
        await _until_signalled()
        # SIGTERM drains: stop intake, finish what is in flight, then close (readiness says
        # "draining" meanwhile).
        await actor.service.stop()
    finally:
        if server is not None:
            await server.close()
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    configure_logs(args.actor)
    from workers.runtime import tracing

    try:
        tracing.configure_from_env(f"relay-{args.actor}")
        return run_loop(_worker(args))
    except Exception as exc:  # a clear line, not a traceback, for an operator
        print(f"relay worker {args.actor}: {exc}", file=sys.stderr)
        return 1


def _spawn_worker(actor: str, settings: NodeSettings, extra: list[str]) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "workers.cli",
        "worker",
        actor,
        "--don",
        settings.don,
        "--node",
        settings.node,
        *extra,
    ]
    # The workers' INFO lines would bury the ready report on a terminal: warnings up, unless asked.
    env = {**os.environ, "RELAY_LOG_LEVEL": os.environ.get("RELAY_LOG_LEVEL", "WARNING")}
    # The URL goes by the environment, not argv: it may carry a password, and argv is public
    # to every local user (`ps`).
    env["RELAY_NATS_URL"] = settings.nats_url
    if settings.node_key is not None:
        env["RELAY_NODE_KEY"] = str(settings.node_key)  # a path, never the key
    # One port cannot serve several processes: `relay up` gives each its own (--health-port-base).
    env.pop("RELAY_HEALTH_PORT", None)
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )


def listens_on(actor: str, settings: NodeSettings) -> list[str]:
    """The subjects an actor serves (for the ready report)."""
    from schemas import rpc, subjects
    from workers.reference import echo as echo_ref

    don, node = settings.don, settings.node
    if actor in ("dispatch-secrets", "dispatch-capability"):
        method = rpc.MethodSecretsGet if actor == "dispatch-secrets" else rpc.MethodCapabilityExec
        return [subjects.dispatch(don, node, method)]
    return {
        "ingress": [subjects.rpc(don, node)],
        "verifier": [subjects.verify(don, node)],
        "registry": [subjects.registry_wildcard(don, node)],
        "vault": [subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet)],
        "echo": [subjects.capability(echo_ref.ECHO_ID, m) for m in echo_ref.METHODS],
    }.get(actor, [])


def wait_ready(procs: dict[str, subprocess.Popen[str]], timeout_s: float) -> None:
    """Each worker prints one `ready` line once it serves; anything else is a failed start."""
    deadline = time.monotonic() + timeout_s
    waiting = dict(procs)
    with selectors.DefaultSelector() as sel:
        for name, proc in waiting.items():
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, name)
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"actors not ready in {timeout_s}s: {', '.join(sorted(waiting))}"
                )
            for key, _ in sel.select(timeout=remaining):
                name = key.data
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    code = waiting[name].wait()
                    raise RuntimeError(f"actor {name} exited during start (code {code})")
                if "ready" in line:
                    sel.unregister(key.fileobj)
                    waiting.pop(name)


def _stop_processes(procs: dict[str, subprocess.Popen[str]], grace_s: float = 15.0) -> None:
    # Ingress first: stop intake, then the stages it depends on.
    order = sorted(procs, key=lambda name: 0 if name == "ingress" else 1)
    for name in order:
        proc = procs[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        if name == "ingress":
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
    for proc in procs.values():
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="run one actor of a relay node in this process")
    worker.add_argument("actor", choices=sorted(ALL_ACTORS))
    _add_node_options(worker)
    worker.add_argument(
        "--health-port",
        type=int,
        help="serve /livez and /readyz on this port (default: $RELAY_HEALTH_PORT; unset or 0: off)",
    )
    worker.add_argument(
        "--health-host",
        help="address of the health port (default: $RELAY_HEALTH_HOST or 127.0.0.1)",
    )
    worker.set_defaults(func=_cmd_worker)
    register_up(sub)


def _dev_key(settings: NodeSettings, directory: Path) -> Path:
    """RELAY_PROTOCOL=current without RELAY_NODE_KEY: the node's PUBLIC development key (the one
    deploy/registry.example.json lists), in a 0600 file of a private temp dir, loudly."""
    from workers.registry.devseed import dev_node_seed
    from workers.runtime import nodekey

    path = directory / f"{settings.node}.key"
    key = nodekey.write_new(path, dev_node_seed(settings.node))
    print(
        f"WARNING: RELAY_PROTOCOL=current without RELAY_NODE_KEY: signing with the PUBLIC"
        f" development key of {settings.node} (peer id {nodekey.peer_id(key)}); development"
        " only, never in production (`relay keys new`)",
        flush=True,
    )
    return path


class _Stop(BaseException):
    """SIGINT or SIGTERM reached `relay up` (a BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way swallows it)."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _cmd_up(args: argparse.Namespace) -> int:
    configure_logs("up", default_level="WARNING")
    from workers.node.process import embedded_server, seed_registry

    server = None
    key_dir: str | None = None
    procs: dict[str, subprocess.Popen[str]] = {}
    # From the very start: a signal during the server's start, the seeding or the wait for the
    # actors must still stop what was started (by default it killed `relay up` alone).
    previous = {sig: signal.signal(sig, _raise_stop) for sig in _STOP_SIGNALS}
    try:
        settings = _settings(args)
        if settings.protocol == "current" and settings.node_key is None:
            key_dir = tempfile.mkdtemp(prefix="relay-up-key-")
            settings = dataclasses.replace(settings, node_key=_dev_key(settings, Path(key_dir)))
        if args.nats is None and not os.environ.get("RELAY_NATS_URL"):
            server = embedded_server()
            server.start_sync()
            settings = dataclasses.replace(settings, nats_url=server.url)
            print(f"embedded nats-server {server.url} (pid {server.pid}, JetStream in a temp dir)")
        # The embedded server gets the example registry unless told otherwise; a server given
        # with --nats (or $RELAY_NATS_URL) may hold a DON's shared registry, which `relay up`
        # must never overwrite (nor prune) unless --seed names a file explicitly.
        seed = args.seed if args.seed is not None else (EXAMPLE_SEED if server else "")
        if seed:
            asyncio.run(
                seed_registry(
                    settings.nats_url,
                    Path(seed),
                    party=settings.node,
                    replicas=args.replicas,
                    domain=settings.js_domain,
                )
            )
            print(f"registry seeded from {seed}")
        elif server is None:
            print("registry: using the server's (no --seed given, nothing written)")
        extra = ["--dev-root", str(settings.dev_root_pem)] if settings.dev_root_pem else []
        metrics_port = (
            DEFAULT_METRICS_PORT if settings.metrics_port is None else settings.metrics_port
        )

        base = args.health_port_base
        if base is not None and not 1 <= base <= 65536 - len(args.actors):
            raise ValueError(f"--health-port-base leaves no room for {len(args.actors)} ports")
        health_ports = {a: base + i for i, a in enumerate(args.actors)} if base else {}

        def spawn(actor: str) -> subprocess.Popen[str]:
            own = ["--metrics-port", str(metrics_port)] if actor == "ingress" else []
            if actor in health_ports:
                own += ["--health-port", str(health_ports[actor])]
            return _spawn_worker(actor, settings, extra + own)

        policy = RestartPolicy(max_deaths=args.max_deaths, window_s=args.death_window)
        for actor in args.actors:
            procs[actor] = spawn(actor)
        wait_ready(procs, timeout_s=30)
        from schemas import subjects

        print(f"relay node {settings.don}/{settings.node} ready:")
        print(f"  JSON-RPC  {subjects.rpc(settings.don, settings.node)}")
        print(f"  actors    {', '.join(f'{a} (pid {p.pid})' for a, p in procs.items())}")
        for actor in procs:
            print(f"    {actor:<20} {', '.join(listens_on(actor, settings))}")
        if metrics_port and "ingress" in procs:
            print(f"  metrics   http://127.0.0.1:{metrics_port}/metrics (Prometheus)")
        for actor, port in health_ports.items():
            print(f"  health    {actor:<20} http://127.0.0.1:{port}/livez, /readyz")
        print("Ctrl-C (SIGINT) or SIGTERM drains and stops everything.", flush=True)
        if args.once:
            return 0
        return supervise(procs, spawn, policy, server=server)  # a signal raises _Stop
    except _Stop:
        return 0
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"relay up: {exc}", file=sys.stderr)
        return 1
    finally:
        # Nothing interrupts the cleanup: a second Ctrl-C used to abandon the actors not yet
        # told to stop, and the server, still running without a parent.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            _stop_processes(procs)
            if server is not None:
                server.cleanup()
            if key_dir is not None:
                shutil.rmtree(key_dir, ignore_errors=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _death(proc: subprocess.Popen[str]) -> str:
    code = proc.returncode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def supervise(
    procs: dict[str, subprocess.Popen[str]],
    spawn: Callable[[str], subprocess.Popen[str]],
    policy: RestartPolicy,
    *,
    server: NatsServer | None = None,
    poll_s: float = 0.2,
) -> int:
    """Watch the actors until a signal (which raises out of here): a dead one is logged at once
    and restarted after its backoff; one that keeps dying ends `relay up` with 1 (the caller
    stops the rest). `procs` is kept current, so the caller always stops the live processes."""
    deaths = {name: ActorDeaths(policy) for name in procs}
    started = dict.fromkeys(procs, time.monotonic())
    due: dict[str, float] = {}  # dead actors and when to start them again
    restarted: set[str] = set()  # started again, not yet ready
    with selectors.DefaultSelector() as sel:

        def watch(name: str) -> None:
            stdout = procs[name].stdout
            if stdout is not None:
                sel.register(stdout, selectors.EVENT_READ, name)

        for name in procs:
            watch(name)
        while True:
            now = time.monotonic()
            wait = min([poll_s, *(max(0.0, at - now) for at in due.values())])
            for key, _ in sel.select(timeout=wait):
                name = key.data
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:  # EOF: the process is gone (poll below says how)
                    sel.unregister(key.fileobj)
                elif "ready" in line and name in restarted:
                    restarted.discard(name)
                    print(f"actor {name} ready again (pid {procs[name].pid})", flush=True)
            if server is not None and not server.running:
                log.error("the embedded nats-server exited: stopping the node")
                print("relay up: the embedded nats-server exited", file=sys.stderr)
                return 1
            now = time.monotonic()
            for name, proc in procs.items():
                if name in due or proc.poll() is None:
                    continue
                if proc.stdout is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(proc.stdout)
                    proc.stdout.close()
                restarted.discard(name)
                outcome = deaths[name].died(now=now, started_at=started[name])
                how = _death(proc)
                if isinstance(outcome, GiveUp):
                    log.error(
                        "actor %s (pid %d) died (%s): %d deaths in %gs, giving up",
                        name,
                        proc.pid,
                        how,
                        outcome.deaths,
                        outcome.window_s,
                        extra={"actor_name": name, "pid": proc.pid, "deaths": outcome.deaths},
                    )
                    print(
                        f"relay up: actor {name} died {outcome.deaths} times in"
                        f" {outcome.window_s:g}s ({how}); stopping the node",
                        file=sys.stderr,
                    )
                    return 1
                log.error(
                    "actor %s (pid %d) died (%s); restarting it in %.1fs (%d deaths in %gs)",
                    name,
                    proc.pid,
                    how,
                    outcome.delay_s,
                    outcome.deaths,
                    policy.window_s,
                    extra={"actor_name": name, "pid": proc.pid, "deaths": outcome.deaths},
                )
                due[name] = now + outcome.delay_s
            for name, at in list(due.items()):
                if at > time.monotonic():
                    continue
                del due[name]
                procs[name] = spawn(name)
                started[name] = time.monotonic()
                restarted.add(name)
                watch(name)
                log.warning(
                    "actor %s restarted (pid %d)",
                    name,
                    procs[name].pid,
                    extra={"actor_name": name, "pid": procs[name].pid},
                )
                print(f"actor {name} restarted (pid {procs[name].pid})", flush=True)


def register_up(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up", help="run one relay node: every actor, on an embedded nats-server unless --nats"
    )
    _add_node_options(up)
    up.add_argument(
        "--seed",
        default=None,
        help="registry seed file loaded at start (default: the example seed on the embedded"
        " server, nothing with --nats; '' skips)",
    )
    up.add_argument(
        "--replicas",
        type=positive_int,
        default=None,
        help="replicas of the registry bucket the seed is written to (3 on a cluster)",
    )
    up.add_argument(
        "--actors",
        nargs="+",
        default=list(ALL_ACTORS),
        choices=sorted(ALL_ACTORS),
        help="which actors to run (default: all)",
    )
    up.add_argument(
        "--once", action="store_true", help="start, report ready, then stop (smoke test)"
    )
    up.add_argument(
        "--health-port-base",
        type=int,
        help="serve each actor's /livez and /readyz on 127.0.0.1, from this port up, one per"
        " actor in --actors order (default: none)",
    )
    up.add_argument(
        "--max-deaths",
        type=int,
        default=RestartPolicy.max_deaths,
        help="an actor dying this many times within --death-window ends `relay up` with exit 1"
        " (default %(default)s)",
    )
    up.add_argument(
        "--death-window",
        type=float,
        default=RestartPolicy.window_s,
        help="seconds (default %(default)s); dead actors are restarted after a backoff of 0.5 s"
        " doubling up to 30 s",
    )
    up.set_defaults(func=_cmd_up)
