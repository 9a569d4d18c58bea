"""`relay demo`: the whole mission end to end on this machine (see workers/node/demo.py);
`relay demo --cluster`: a DON of four operators on a 3-server cluster, with a server killed, an
ingress restarted and a rogue verifier (workers/node/cluster_demo.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys


def _run(args: argparse.Namespace) -> int:
    # The demo prints its own account; actors' logs only matter when something goes wrong.
    logging.basicConfig(level=os.environ.get("RELAY_LOG_LEVEL", "CRITICAL"))
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.cluster:
        from workers.node.cluster_demo import run_cluster_demo

        try:
            ok = asyncio.run(run_cluster_demo(say))
        except (RuntimeError, OSError, ConnectionError) as exc:
            # Everything it started is stopped by then; the reason is one line, not a traceback.
            print(f"relay demo --cluster: {exc}", file=sys.stderr)
            return 1
    elif args.protocol == "current":
        from workers.node.demo_current import run_demo_current

        ok = asyncio.run(run_demo_current(say))
    else:
        from workers.node.demo import run_demo

        ok = asyncio.run(run_demo(say))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="run the whole story locally: nodes, gateway, vault, enclave"
    )
    demo.add_argument(
        "--protocol",
        choices=("n1", "current"),
        default="n1",
        help="n1: F+1 identical answers; current: signed answers, bundles, the enclave's pick",
    )
    demo.add_argument(
        "--cluster",
        action="store_true",
        help="four operators on a 3-server NATS cluster: a server killed, an ingress restarted,"
        " a rogue verifier (under 60 s)",
    )
    demo.set_defaults(func=_run)
