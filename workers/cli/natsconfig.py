"""`relay nats-config TOPOLOGY --out DIR`: every nats-server config of a deployment, from TOML.

One account per node operator, one for the gateway, one per capability DON (docs/deployment.md
explains the layout and the topology file; deploy/nats/ has examples). Users are nkeys: the
public keys go into the configs, each seed into `DIR/seeds/<account>/<actor>.nk` (0600; reused
when it exists, so regenerating rotates no key), and `DIR/env/<account>.env` names an account's seed
files as `RELAY_NATS_NKEY_SEED_<ACTOR>=...`. With `--dev`, the dev passwords instead (a loopback
test server only). Check each written config with `nats-server -c FILE -t`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.deploy import natsconf, topology

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_TOPOLOGY = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nats-config",
        help="write every nats-server config of a deployment from a topology file (TOML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("topology", type=Path, metavar="TOPOLOGY", help="the topology file (TOML)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    p.add_argument(
        "--dev",
        action="store_true",
        help="dev passwords (<user>-dev-password) instead of nkeys: loopback test servers only",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        topo = topology.load(args.topology)
    except topology.TopologyError as exc:
        print(f"relay nats-config: {args.topology} cannot be used:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_BAD_TOPOLOGY
    try:
        written = natsconf.write(topo, args.out, dev=args.dev)
    except OSError as exc:
        print(f"relay nats-config: cannot write under {args.out}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    identity = "dev passwords" if args.dev else f"{len(written.seeds)} nkey seeds (0600)"
    print(
        f"{topo.layout} layout for relay DON {topo.don}: {len(topo.nodes)} nodes "
        f"({', '.join(f'{n.name}/{n.operator}' for n in topo.nodes)}), {identity}"
    )
    for path in written.configs:
        print(f"  config  {path}")
    for path in written.env_files:
        print(f"  env     {path}")
    return EXIT_OK
