"""What the deploy/ tests share: the repository's paths, YAML loading, and the checks that a command
the artefacts run is a real `relay` command and a variable they set is one the code reads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from workers.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RELAY = Path(sys.executable).parent / "relay"
SOURCES = "\n".join(p.read_text() for p in (ROOT / "workers").rglob("*.py"))

# The health probe's settings come with the health endpoints (docs/operations.md); until that
# code is in this tree they are the only variables the artefacts may set that nothing reads.
HEALTH_CODE = ROOT / "workers" / "runtime" / "health.py"
HEALTH_VARIABLES = {"RELAY_HEALTH_PORT", "RELAY_HEALTH_HOST"}


def load_all(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def load(path: Path) -> dict[str, Any]:
    (doc,) = load_all(path)
    return doc


def assert_relay_command(args: list[str]) -> None:
    """`relay <args>` parses as the CLI would (every option real, every value accepted)."""
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"`relay {' '.join(args)}` does not parse (exit {exc.code})") from exc


def assert_help_works(commands: Iterable[tuple[str, ...]]) -> None:
    """`relay <command> --help` exits 0 for each distinct command, run as the console script."""
    for command in sorted(set(commands)):
        proc = subprocess.run(
            [str(RELAY), *command, "--help"], capture_output=True, timeout=60, check=False
        )
        assert proc.returncode == 0, (command, proc.stderr)


def command_of(args: list[str]) -> tuple[str, ...]:
    """The subcommand path of `relay` arguments: ('worker',), ('registry', 'load'), ..."""
    if args[:1] == ["registry"]:
        return tuple(args[:2])
    return tuple(args[:1])


def assert_read_by_the_code(names: Iterable[str]) -> None:
    """Every RELAY_* variable set is one the code reads (a typo would be silently ignored)."""
    for name in set(names):
        if name in HEALTH_VARIABLES and not HEALTH_CODE.exists():
            continue
        # Per-actor variables are read by prefix (RELAY_NATS_NKEY_SEED_<ACTOR>).
        stem = name
        for prefix in ("RELAY_NATS_NKEY_SEED_", "RELAY_NATS_CREDS_"):
            if name.startswith(prefix):
                stem = prefix
        assert stem in SOURCES, name
