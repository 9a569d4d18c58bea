"""`relay bench <what>`: the shipped benchmarks, each measured side by side in one run.

`attest` (the Nitro verifier beside a naive baseline and the PyPI peers), `pipeline` (one
relay node end to end beside a raw NATS echo) and `don` (the whole DON through the gateway's
HTTP front beside one node's pipeline). Each imports its machinery only when it runs, so
`relay --help` does not pay for the peers, protobuf or a nats-server.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workers.cli.args import positive_float, positive_int
from workers.gateway.ratelimit import RateLimit, RateLimitSpecError

EXIT_OK, EXIT_SELF_CHECK, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="benchmarks: ours beside baselines and peers, one run")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    register_attest(bench_sub)
    register_pipeline(bench_sub)
    register_tracing(bench_sub)
    register_don(bench_sub)


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


def _rate(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except RateLimitSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register_don(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    don = bench_sub.add_parser(
        "don",
        help="the whole DON (gateway + 4 nodes + vault and echo) through HTTP, beside one node",
        description="Saturation, p50/p99 at half of it and errors of the whole DON through the"
        " gateway's HTTP front, beside one node's pipeline saturation in the same run. With"
        " --at-rate: the gateway sizing experiment (a fixed rate through the given limits).",
    )
    don.add_argument("--json", action="store_true", help="print one JSON object")
    don.add_argument("--nodes", type=positive_int, default=4, help="relay nodes in the DON (4)")
    don.add_argument(
        "--requests", type=positive_int, default=1200, help="requests at saturation (1200)"
    )
    don.add_argument(
        "--seconds", type=positive_float, default=4.0, help="length of the latency run (4)"
    )
    don.add_argument(
        "--in-flight", type=positive_int, default=64, help="requests in flight at saturation (64)"
    )
    don.add_argument(
        "--rounds", type=positive_int, default=3, help="saturation rounds, medians taken (3)"
    )
    don.add_argument(
        "--at-rate",
        type=positive_float,
        help="sizing: send --count requests at this rate (req/s) instead, and count the answers",
    )
    don.add_argument("--count", type=positive_int, default=400, help="with --at-rate (400)")
    don.add_argument(
        "--node-rate",
        type=_rate,
        help="the gateway's --node-rate (default: a limit no benchmark rate reaches)",
    )
    don.add_argument(
        "--global-rate",
        type=_rate,
        help="the gateway's --global-rate (default: a limit no benchmark rate reaches)",
    )
    don.set_defaults(func=_don)


def _don(args: argparse.Namespace) -> int:
    from workers.bench import don

    node_rate = args.node_rate or don.UNBOUNDED
    global_rate = args.global_rate or don.UNBOUNDED
    try:
        if args.at_rate is not None:
            report = don.paced(
                don.PacedSettings(
                    rate_rps=args.at_rate,
                    count=args.count,
                    node_rate=node_rate,
                    global_rate=global_rate,
                    nodes=args.nodes,
                )
            )
            print(json.dumps(report, sort_keys=True) if args.json else don.render_paced(report))
            return EXIT_OK
        report = don.run(
            don.DonSettings(
                nodes=args.nodes,
                requests=args.requests,
                seconds=args.seconds,
                in_flight=args.in_flight,
                rounds=args.rounds,
                node_rate=node_rate,
                global_rate=global_rate,
            )
        )
    except RuntimeError as exc:  # a failed start, or a direct node request that did not succeed
        print(f"relay bench don: {exc}", file=sys.stderr)
        return EXIT_SELF_CHECK
    print(json.dumps(report, sort_keys=True) if args.json else don.render(report))
    # Every answer must be correct: a wrong or lost one fails the run, after the report.
    return EXIT_OK if report["errors"] == 0 else EXIT_SELF_CHECK
