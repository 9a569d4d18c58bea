"""Argument types shared by the CLI's commands: one wording for one mistake everywhere."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

from workers.runtime.jetstream import check_domain
from workers.runtime.servers import DEFAULT_SERVERS, ServerListError, join_servers, parse_servers


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero (NaN and infinity are refused: they are never a duration)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


class _ServerList(argparse.Action):
    """`--nats` given once with a comma-separated list, or repeated: one list, checked at parse
    time (a bad entry is a usage error naming it, password masked). The first `--nats` on the
    command line replaces the default ($RELAY_NATS_URL), later ones add to it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = f"_{self.dest}_given"
        previous = getattr(namespace, self.dest) if getattr(namespace, given, False) else None
        joined = str(values) if previous is None else f"{previous},{values}"
        try:
            servers = parse_servers(joined)
        except ServerListError as exc:
            parser.error(f"{option_string}: {exc}")
        setattr(namespace, self.dest, join_servers(servers))
        setattr(namespace, given, True)


def nats_servers_arg(
    p: argparse.ArgumentParser, *, default: str | None = None, help_default: str | None = None
) -> None:
    """The one `--nats` of every command: a server list, repeatable."""
    shown = help_default or "$RELAY_NATS_URL or nats://127.0.0.1:4222"
    p.add_argument(
        "--nats",
        action=_ServerList,
        default=default,
        metavar="URL[,URL...]",
        help=f"NATS server(s): a comma-separated list, or --nats repeated (default: {shown})",
    )


def env_servers() -> str:
    """$RELAY_NATS_URL (empty means the default), for a `--nats` default."""
    return os.environ.get("RELAY_NATS_URL") or DEFAULT_SERVERS


def js_domain(text: str) -> str:
    """A JetStream domain: one subject token."""
    try:
        check_domain(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            str(exc).replace("RELAY_JS_DOMAIN", "the domain")
        ) from None
    return text


def party_arg(p: argparse.ArgumentParser) -> None:
    """Whose NATS user to connect as: each party has its own account (docs/deployment.md)."""
    p.add_argument(
        "--party",
        metavar="NAME",
        help="whose dev user: a node (node-1), gateway, vault or echo"
        " (default: $RELAY_NODE or node-0; the gateway's and capabilities' own workers: themselves)",
    )
