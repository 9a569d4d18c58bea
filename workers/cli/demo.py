"""`relay demo`: the whole mission end to end on this machine (see workers/node/demo.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os


def _run(args: argparse.Namespace) -> int:
    # The demo prints its own account; actors' logs only matter when something goes wrong.
    logging.basicConfig(level=os.environ.get("RELAY_LOG_LEVEL", "CRITICAL"))
    from workers.node.demo import run_demo

    ok = asyncio.run(run_demo(lambda line: print(line, flush=True)))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="run the whole story locally: nodes, gateway, vault, enclave"
    )
    demo.set_defaults(func=_run)
