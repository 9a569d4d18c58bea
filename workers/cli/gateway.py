"""`relay gateway`: the enclave-facing gateway of one relay DON (HTTP front + NATS front).

It fans each request out to every DON member over NATS and answers what F+1 nodes agree on
(`--protocol n1`, G0'), or forwards a bundle of the nodes' signed answers for the enclave to
pick from (`--protocol current`, G3: PROTOCOL 10.10).
SIGTERM or Ctrl-C drains: the listener closes, in-flight requests finish (bounded), then it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal

from workers.cli.args import env_servers, js_domain, nats_servers_arg, positive_float
from workers.gateway import sizing
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import (
    DonConfig,
    DonConfigError,
    HandlerConfig,
    Membership,
    MembershipUnavailable,
    StaticMembership,
)
from workers.gateway.http import (
    DEFAULT_MAX_BODY_BYTES,
    HttpFront,
    HttpLimits,
    connection_cap,
    fd_limit,
)
from workers.gateway.membership import RegistryMembership
from workers.gateway.ratelimit import RateLimit, RateLimitSpecError
from workers.runtime import tracing
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.jetstream import env_domain
from workers.runtime.logs import configure as configure_logs
from workers.runtime.loop import run_loop

log = logging.getLogger("relay.cli.gateway")


def parse_host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT`; raises ValueError with the expected shape."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdecimal():
        raise ValueError(f"--http must be HOST:PORT, got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"--http port must be 0-65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _rate(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except RateLimitSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _members(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "gateway",
        help="run the gateway: fan requests out to the relay DON, answer on F+1 agreement",
        description=__doc__,
    )
    nats_servers_arg(p, default=env_servers())
    p.add_argument(
        "--js-domain",
        type=js_domain,
        default=None,
        help="JetStream domain of the registry bucket, with --members-from-registry"
        " (default: $RELAY_JS_DOMAIN, else the server's own)",
    )
    p.add_argument("--user", default=os.environ.get("RELAY_NATS_USER"))
    p.add_argument("--password", default=os.environ.get("RELAY_NATS_PASSWORD"))
    p.add_argument("--don", default=os.environ.get("RELAY_DON", "relay-don"), help="relay DON name")
    membership = p.add_mutually_exclusive_group(required=True)
    membership.add_argument(
        "--members",
        type=_members,
        help="comma-separated node addresses of the relay DON (as the nodes use in their subjects)",
    )
    membership.add_argument(
        "--members-from-registry",
        action="store_true",
        help="follow the DON's F and members in the registry's KV bucket (changes apply live;"
        " requests fail closed while the DON is not there)",
    )
    p.add_argument(
        "--f", type=int, default=None, help="faults tolerated with --members; default (N-1)//3"
    )
    p.add_argument(
        "--http",
        default="127.0.0.1:8080",
        help="HTTP listen address HOST:PORT; 'off' serves NATS only",
    )
    p.add_argument("--path", default="/", help="the HTTP path enclaves POST to")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY_BYTES, help="bytes")
    p.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="HTTP connections held at once (default: 4096, lowered to fit the fd limit)",
    )
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds")
    p.add_argument("--read-timeout", type=float, default=10.0, help="seconds, for the body")
    p.add_argument("--keepalive-timeout", type=float, default=5.0, help="seconds")
    p.add_argument("--request-timeout", type=float, default=30.0, help="seconds")
    p.add_argument("--node-send-timeout", type=float, default=10.0, help="seconds")
    p.add_argument(
        "--protocol",
        choices=("n1", "current"),
        default=os.environ.get("RELAY_PROTOCOL", "n1"),
        help="n1: F+1 identical answers (G0'); current: a bundle of signed answers (G3)",
    )
    p.add_argument(
        "--quorum-grace",
        type=float,
        default=10.0,
        help="current: seconds to wait for more signed answers once F+1 are in (negative: off)",
    )
    p.add_argument(
        "--sweep-interval",
        type=float,
        default=None,
        help="seconds (default 5 for n1, 1 for current, as upstream's tickers)",
    )
    p.add_argument("--drain-timeout", type=float, default=10.0, help="seconds")
    p.add_argument("--global-rate", type=_rate, default=RateLimit(rate=50.0, burst=10))
    p.add_argument("--node-rate", type=_rate, default=RateLimit(rate=10.0, burst=10))
    p.add_argument("--max-active", type=int, default=10_000, help="requests in flight")
    p.add_argument(
        "--expected-rps",
        type=positive_float,
        default=None,
        help="the request rate this gateway must carry: a warning at start names any rate"
        " limit that cannot carry it (docs/gateway.md, Sizing)",
    )
    p.add_argument("--instance", default=None, help="replica id (default: random)")
    p.add_argument("--log-level", default=os.environ.get("RELAY_LOG_LEVEL", "INFO"))
    p.set_defaults(func=run)


def warn_if_undersized(don: DonConfig, config: HandlerConfig, expected_rps: float | None) -> None:
    """Log, at start, each rate limit that cannot carry the expected rate through this DON."""
    if expected_rps is None:
        return
    problems = sizing.shortfalls(
        config.per_node_rate,
        config.global_rate,
        members=len(don.members),
        f=don.f,
        expected_rps=expected_rps,
    )
    for problem in problems:
        log.warning("gateway sizing: %s", problem)
    if not problems:
        log.info("gateway sizing: the rate limits carry %g req/s with headroom", expected_rps)


REGISTRY_WAIT_S = 10.0
"""How long `--members-from-registry` waits for the bucket's first read at start."""


def run(args: argparse.Namespace) -> int:
    configure_logs("gateway", level=args.log_level)
    tracing.configure_from_env("relay-gateway")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    if args.members_from_registry and args.f is not None:
        log.error("--f goes with --members; the registry holds the DON's F")
        return 2
    try:
        don: DonConfig | None = None
        if not args.members_from_registry:
            members: tuple[str, ...] = args.members
            f = args.f if args.f is not None else (len(members) - 1) // 3
            don = DonConfig(name=args.don, f=f, members=members)
        http = None if args.http == "off" else parse_host_port(args.http)
        args.js_domain = args.js_domain or env_domain()
        config = HandlerConfig(
            request_timeout_s=args.request_timeout,
            node_send_timeout_s=args.node_send_timeout,
            global_rate=args.global_rate,
            per_node_rate=args.node_rate,
            max_active_requests=args.max_active,
            protocol=args.protocol,
            quorum_grace_s=args.quorum_grace,
        )
        limits = HttpLimits(
            header_timeout_s=args.header_timeout,
            read_timeout_s=args.read_timeout,
            keepalive_timeout_s=args.keepalive_timeout,
            max_connections=args.max_connections,
        )
        if http is not None:
            connection_cap(args.max_connections, fd_limit())  # refuse at start, not later
    except (DonConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    try:
        settings = GatewaySettings(
            don=args.don,
            handler=config,
            sweep_interval_s=args.sweep_interval
            if args.sweep_interval is not None
            else (1.0 if args.protocol == "current" else 5.0),
            drain_timeout_s=args.drain_timeout,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if args.instance:
        settings = dataclasses.replace(settings, instance=args.instance)
    if don is not None:
        warn_if_undersized(don, config, args.expected_rps)
    try:
        run_loop(_serve(args, settings, don, http, limits))
    except OSError as exc:
        log.error("gateway failed: %s", exc)
        return 1
    return 0


def _knows_members(membership: Membership) -> bool:
    """Whether the DON's members are known (from the registry: loaded), so requests can be served."""
    try:
        membership.current()
    except MembershipUnavailable:
        return False
    return True


async def _serve(
    args: argparse.Namespace,
    settings: GatewaySettings,
    don: DonConfig | None,
    http: tuple[str, int] | None,
    limits: HttpLimits,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # --user/--password (or RELAY_NATS_USER/_PASSWORD) win; else the gateway's own user.
    user, password = (args.user, args.password) if args.user else credentials_for("gateway")
    nc = await connect(args.nats, actor="gateway", user=user, password=password)
    following: RegistryMembership | None = None
    membership: Membership
    if don is None:
        following = RegistryMembership(args.don, js_domain=args.js_domain)
        try:
            await following.start(nc, wait_s=REGISTRY_WAIT_S)
        except Exception:
            await following.stop()
            await nc.close()
            raise
        membership = following
        # The registry's DON is known only now; a later change of members is not re-checked.
        with contextlib.suppress(MembershipUnavailable):
            warn_if_undersized(membership.current(), settings.handler, args.expected_rps)
    else:
        membership = StaticMembership(don)
    actor = GatewayActor(nc, settings, membership)
    await actor.start()
    front: HttpFront | None = None
    try:
        if http is not None:
            front = HttpFront(
                actor.serve,
                host=http[0],
                port=http[1],
                path=args.path,
                max_body_bytes=args.max_body,
                ready=lambda: nc.is_connected and _knows_members(membership),
                limits=limits,
                live=lambda: not nc.is_closed,
            )
            await front.start()
        http_text = f"{http[0]}:{front.port}" if front is not None and http else "off"
        try:
            current = membership.current()
            log.info(
                "gateway ready (%s): DON %s, F=%d, %d members%s, HTTP %s;"
                " rate limits carry at most %g req/s",
                settings.handler.protocol,
                current.name,
                current.f,
                len(current.members),
                " (from the registry)" if following is not None else "",
                http_text,
                sizing.carried_rps(
                    settings.handler.per_node_rate, settings.handler.global_rate, current.f
                ),
            )
        except MembershipUnavailable as exc:
            log.warning("gateway ready, HTTP %s, but failing closed for now: %s", http_text, exc)
        await stop.wait()
        log.info("stopping: draining in-flight requests")
    finally:
        if front is not None:
            await front.stop_listening()
        await actor.stop()
        if following is not None:
            await following.stop()
        if front is not None:
            await front.close()
        with contextlib.suppress(Exception):
            await nc.close()
