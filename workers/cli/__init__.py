"""The `relay` command: one entry point, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast


class _CommandGroup(Protocol):
    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


# Each module registers its subcommands and sets `func` (returning an exit code) on its parsers.
_COMMAND_MODULES: tuple[str, ...] = (
    "workers.cli.attest",
    "workers.cli.gateway",
    "workers.cli.registry",
    "workers.cli.node",
    "workers.cli.demo",
    "workers.cli.bench",
    "workers.cli.tail",
    "workers.cli.svc",
    "workers.cli.req",
    "workers.cli.response",
    "workers.cli.compute_request",
    "workers.cli.keys",
    "workers.cli.health",
    "workers.cli.enclave",
    "workers.cli.natsconfig",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        module = cast(_CommandGroup, importlib.import_module(name))
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    code: int = func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
