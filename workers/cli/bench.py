"""`relay bench <what>`: the shipped benchmarks, each measured side by side in one run.

`attest` (the Nitro verifier beside a naive baseline and the PyPI peers) and `pipeline` (one
relay node end to end beside a raw NATS echo). Each imports its machinery only when it runs, so
`relay --help` does not pay for the peers, protobuf or a nats-server.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workers.cli.args import positive_float, positive_int

EXIT_OK, EXIT_SELF_CHECK, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="benchmarks: ours beside baselines and peers, one run")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    register_attest(bench_sub)
    register_pipeline(bench_sub)
    register_tracing(bench_sub)


def register_attest(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    attest = bench_sub.add_parser(
        "attest",
        help="Nitro attestation: warm, cold, naive baseline, 1 vs 1,000 trusted sets, PyPI peers",
    )
    attest.add_argument("--json", action="store_true", help="print one JSON object")
    attest.add_argument(
        "--seconds", type=positive_float, default=0.5, help="per contender per round (0.5)"
    )
    attest.add_argument("--rounds", type=positive_int, default=7, help="rounds, median taken (7)")
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


def register_pipeline(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pipeline = bench_sub.add_parser(
        "pipeline",
        help="one relay node end to end (both methods, real attestations) beside a raw NATS echo",
    )
    pipeline.add_argument("--json", action="store_true", help="print one JSON object")
    pipeline.add_argument(
        "--requests", type=positive_int, default=3000, help="requests at saturation (3000)"
    )
    pipeline.add_argument(
        "--seconds", type=positive_float, default=4.0, help="length of the latency run (4)"
    )
    pipeline.add_argument(
        "--in-flight", type=positive_int, default=64, help="requests in flight at saturation (64)"
    )
    pipeline.add_argument(
        "--latency-rounds",
        type=positive_int,
        default=3,
        help="latency rounds, each with its own floor; the median ratio is reported (3)",
    )
    pipeline.add_argument(
        "--current",
        action="store_true",
        help="also a node under RELAY_PROTOCOL=current, measured in the same rounds, and the"
        " cost of each step it adds (signing, EnclaveConfig, authorization)",
    )
    pipeline.set_defaults(func=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from workers.bench.pipeline import PipelineSettings, render, run

    try:
        report = run(
            PipelineSettings(
                requests=args.requests,
                seconds=args.seconds,
                in_flight=args.in_flight,
                latency_rounds=args.latency_rounds,
                current=args.current,
            )
        )
    except RuntimeError as exc:  # a failed start or a request that did not succeed
        print(f"relay bench pipeline: {exc}", file=sys.stderr)
        return EXIT_SELF_CHECK
    print(json.dumps(report, sort_keys=True) if args.json else render(report))
    return EXIT_OK


def register_tracing(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tracing = bench_sub.add_parser(
        "tracing", help="what tracing costs a hop: off (the default) beside on, one run"
    )
    tracing.add_argument("--json", action="store_true", help="print one JSON object")
    tracing.add_argument("--rounds", type=positive_int, default=5, help="rounds, median (5)")
    tracing.add_argument(
        "--requests", type=positive_int, default=1000, help="round trips per round (1000)"
    )
    tracing.set_defaults(func=_tracing)


def _tracing(args: argparse.Namespace) -> int:
    from workers.bench.tracing import TracingSettings, render, run

    report = run(TracingSettings(rounds=args.rounds, requests=args.requests))
    print(json.dumps(report, sort_keys=True) if args.json else render(report))
    return EXIT_OK
