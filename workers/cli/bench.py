"""`relay bench <what>`: the shipped benchmarks, each measured side by side in one run.

`attest` is registered here. Other benchmarks plug in without editing this file: a module named
in `_EXTENSIONS` that exists is imported and its function is called with the `bench`
subparsers (e.g. `workers/cli/bench_pipeline.py` defining `register_pipeline(bench_sub)`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_SELF_CHECK, EXIT_USAGE = 0, 1, 2

# (module, function): optional subcommands that live in other modules.
_EXTENSIONS: tuple[tuple[str, str], ...] = (("workers.cli.bench_pipeline", "register_pipeline"),)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="benchmarks: ours beside baselines and peers, one run")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    register_attest(bench_sub)
    for module_name, function in _EXTENSIONS:
        if importlib.util.find_spec(module_name) is not None:
            getattr(importlib.import_module(module_name), function)(bench_sub)


def register_attest(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    attest = bench_sub.add_parser(
        "attest",
        help="Nitro attestation: warm, cold, naive baseline, 1 vs 1,000 trusted sets, PyPI peers",
    )
    attest.add_argument("--json", action="store_true", help="print one JSON object")
    attest.add_argument(
        "--seconds", type=_positive_float, default=0.5, help="per contender per round (0.5)"
    )
    attest.add_argument("--rounds", type=_positive_int, default=7, help="rounds, median taken (7)")
    attest.add_argument(
        "--docs",
        type=Path,
        help="documents with .json sidecars (default: tests/vectors/nitro, else ../shared/nitro)",
    )
    attest.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time the headline rates by this thread's CPU time (default: other tenants of a"
        " shared machine do not count) or by elapsed time; both are reported",
    )
    attest.set_defaults(func=_attest)


def _attest(args: argparse.Namespace) -> int:
    # Imported here: the benchmark pulls in the peers, which `relay --help` should not pay for.
    from workers.bench.attest import SelfCheckFailed, Settings, render, run
    from workers.bench.docs import BenchError

    try:
        settings = Settings(rounds=args.rounds, seconds=args.seconds, clock=args.clock)
        report = run(docs_dir=args.docs, settings=settings)
    except SelfCheckFailed as exc:
        print(f"relay bench attest: self-check failed: {exc}", file=sys.stderr)
        return EXIT_SELF_CHECK
    except BenchError as exc:
        print(f"relay bench attest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report, sort_keys=True) if args.json else render(report))
    return EXIT_OK
