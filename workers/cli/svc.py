"""`relay svc`: list the nats.micro services on the bus (what `nats micro ls` / `info` / `stats` do).

Scatter-gather, as the read-only `ops` actor: publishes to `$SRV.INFO` and `$SRV.STATS` with a
reply inbox each, collects every answer for --wait seconds (nats-py has no client-side helper),
and prints one block per service instance: name, version, id, metadata (don, node, ...), and its
endpoints with subject, queue group, requests, errors and average processing time; or, with
--json, the merged answers as a JSON list. Exit 0 (also when nobody answered), 1 when NATS
cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from workers.cli import svc_format, tail_format
from workers.cli.args import positive_float
from workers.cli.tail import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    UNREACHABLE,
    connect_ops,
    describe_failure,
    nats_url_arg,
    permission_problem,
)

INFO_SUBJECT = "$SRV.INFO"
STATS_SUBJECT = "$SRV.STATS"
DEFAULT_WAIT_S = 0.3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "svc",
        help="list the nats.micro services (name, metadata, endpoints, stats), as the ops user",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nats_url_arg(p)
    p.add_argument("--json", action="store_true", help="print the merged answers as JSON")
    p.add_argument(
        "--wait",
        type=positive_float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long to collect answers (default {DEFAULT_WAIT_S})",
    )
    p.set_defaults(func=run)


async def gather(nc: Client, wait_s: float) -> list[dict[str, Any]]:
    """Ask every service for INFO and STATS, collect for `wait_s`, merge per instance."""
    infos: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []

    def collector(into: list[dict[str, Any]], expected: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_answer(msg: Msg) -> None:
            doc = svc_format.parse_answer(msg.data, expected)
            if doc is not None:
                into.append(doc)

        return on_answer

    info_inbox = nc.new_inbox()
    stats_inbox = nc.new_inbox()
    subs = [
        await nc.subscribe(info_inbox, cb=collector(infos, svc_format.INFO_TYPE)),
        await nc.subscribe(stats_inbox, cb=collector(stats, svc_format.STATS_TYPE)),
    ]
    try:
        await nc.publish(INFO_SUBJECT, b"", reply=info_inbox)
        await nc.publish(STATS_SUBJECT, b"", reply=stats_inbox)
        await nc.flush()
        await asyncio.sleep(wait_s)
    finally:
        for sub in subs:
            with contextlib.suppress(*UNREACHABLE):
                await sub.unsubscribe()
    return svc_format.merge(infos, stats)


async def _svc(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None]:
    """The services that answered, and the server's refusal of our requests if it refused."""
    nc = await connect_ops(args.nats, args.timeout, args.party)
    try:
        wait_s: float = args.wait
        services = await gather(nc, wait_s)
        return services, permission_problem(nc)
    finally:
        await nc.close()


def run(args: argparse.Namespace) -> int:
    try:
        services, problem = asyncio.run(_svc(args))
    except UNREACHABLE as exc:
        print(f"relay svc: {describe_failure(args.nats, args.timeout, exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if problem is not None and not services:
        # Silence because the server refused our $SRV requests is not "nobody runs".
        print(f"relay svc: the server refused the discovery requests: {problem}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(tail_format.render_json(services))
    else:
        print(svc_format.render(services, wait_s=args.wait), end="")
    return EXIT_OK
