"""`relay tail [SUBJECT ...]`: print the messages on relay subjects, decoded (what `nats sub` does).

Connects as the read-only `ops` actor and prints each message as JSON (`workers.cli.tail_format`):
the subject and its decoded parts, the receive time, reply subject, headers, size and the body
(JSON as JSON, text as text, binary as base64; long base64 fields shortened unless --full).
Pretty JSON by default, one line per message with --compact. Stops after --count messages,
after --for seconds, or on Ctrl-C / SIGTERM (exit 0). The line `tailing ... on URL` on stderr
means the subscriptions are in place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from workers.cli import tail_format
from workers.cli.args import (
    env_servers,
    nats_servers_arg,
    party_arg,
    positive_float,
    positive_int,
)
from workers.runtime.bus import NatsConnectError, connect
from workers.runtime.credentials import CredentialsError, credentials_for, redact_url

ACTOR = "ops"
DEFAULT_SUBJECT = "relay.>"

EXIT_OK = 0
EXIT_UNREACHABLE = 1

# Transport failures while connecting or subscribing.
# CredentialsError: an identity file named in the environment but unusable (its text says which).
UNREACHABLE = (ConnectionError, nats.errors.Error, OSError, TimeoutError, CredentialsError)


def subject_arg(text: str) -> str:
    problem = tail_format.check_subject(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"invalid subject {text!r}: {problem}")
    return text


def nats_url_arg(p: argparse.ArgumentParser) -> None:
    nats_servers_arg(p, default=env_servers())
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        help="seconds to reach NATS before giving up (default 5)",
    )
    party_arg(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tail",
        help="print the messages on relay subjects, decoded (as the read-only ops user)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "subjects",
        metavar="SUBJECT",
        nargs="*",
        type=subject_arg,
        default=[DEFAULT_SUBJECT],
        help=f"subject to subscribe to, wildcards allowed (default {DEFAULT_SUBJECT}); "
        "e.g. relay.v1.relay-don.node-0.> or cap.>",
    )
    nats_url_arg(p)
    p.add_argument("--count", type=positive_int, help="stop after this many messages")
    p.add_argument(
        "--for", dest="for_s", type=positive_float, metavar="SECONDS", help="stop after SECONDS"
    )
    p.add_argument("--full", action="store_true", help="do not shorten long base64 fields")
    p.add_argument(
        "--compact", action="store_true", help="one line of JSON per message (for grep / jq)"
    )
    p.set_defaults(func=run)


@contextlib.contextmanager
def quiet_bus_log() -> Iterator[None]:
    """Silence the per-retry and per-error lines of `relay.bus`: the CLI prints one clear line."""
    bus_log = logging.getLogger("relay.bus")
    level = bus_log.level
    bus_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        bus_log.setLevel(level)


async def connect_ops(url: str, timeout_s: float, party: str | None = None) -> Client:
    """Connect as a party's `ops` (credentials from the environment), the first attempt bounded."""
    user, password = credentials_for(ACTOR, party)
    with quiet_bus_log():
        return await connect(
            url,
            actor=ACTOR,
            user=user,
            password=password,
            connect_timeout_s=timeout_s,
            initial_timeout_s=timeout_s,
        )


def describe_failure(url: str, timeout_s: float, exc: BaseException) -> str:
    if isinstance(exc, NatsConnectError) and exc.refusal is not None:
        return f"NATS at {redact_url(url)} refused the connection: {exc.refusal}"
    if isinstance(exc, CredentialsError):
        return f"cannot connect to NATS at {redact_url(url)}: {exc}"
    # `connect` turns its bounded first attempt's timeout into a ConnectionError from it.
    if isinstance(exc, TimeoutError | nats.errors.NoServersError) or isinstance(
        exc.__cause__, TimeoutError
    ):
        return f"cannot reach NATS at {redact_url(url)}: no server answered within {timeout_s:g}s"
    return f"cannot reach NATS at {redact_url(url)}: {exc or type(exc).__name__}"


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set `stop`; returns the function that puts the defaults back."""
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)

    def restore() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)

    return restore


def _silence_stdout() -> None:
    """After a broken pipe (`relay tail | head`), send stdout to /dev/null so exit stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _Printer:
    """Formats and prints each message until the count is reached or stdout goes away."""

    def __init__(self, args: argparse.Namespace, stop: asyncio.Event) -> None:
        self._full: bool = args.full
        self._compact: bool = args.compact
        self._count: int | None = args.count
        self._stop = stop
        self.printed = 0

    async def on_msg(self, msg: Msg) -> None:
        if self._stop.is_set():
            return  # delivered before the unsubscribe: past --count, or after a signal
        record = tail_format.format_message(
            msg.subject,
            msg.data,
            received=datetime.now(UTC),
            reply=msg.reply or None,
            headers=msg.headers,
            full=self._full,
        )
        try:
            sys.stdout.write(tail_format.render(record, compact=self._compact) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            self._stop.set()
            return
        self.printed += 1
        if self._count is not None and self.printed >= self._count:
            self._stop.set()


async def sync_with_server(nc: Client, timeout_s: float) -> None:
    """Return once the server has processed every command sent so far (our SUBs included).

    One flush is not enough with nats-py: `subscribe` only queues its SUB for the flusher task,
    while `flush` writes its PING straight to the socket, so the PONG can come back before the
    server even read the SUB (and before a permissions violation for it). The first flush lets
    the flusher write the SUB; the second PING travels behind it.
    """
    whole_seconds = max(1, math.ceil(timeout_s))  # nats-py types the flush timeout as int
    await nc.flush(timeout=whole_seconds)
    await nc.flush(timeout=whole_seconds)


def permission_problem(nc: Client) -> str | None:
    err = nc.last_error
    if err is not None and "permissions violation" in str(err).lower():
        return str(err)
    return None


async def _tail(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    restore = install_stop_signals(stop)
    try:
        connecting = asyncio.ensure_future(connect_ops(args.nats, args.timeout, args.party))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():  # Ctrl-C while connecting
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, *UNREACHABLE):
                await connecting
            return EXIT_OK
        stopping.cancel()
        nc = connecting.result()
        try:
            return await _tail_on(nc, args, stop)
        finally:
            if not nc.is_closed:
                await nc.close()
    finally:
        restore()


async def _tail_on(nc: Client, args: argparse.Namespace, stop: asyncio.Event) -> int:
    printer = _Printer(args, stop)
    subs: list[Subscription] = []
    with quiet_bus_log():
        for subject in args.subjects:
            subs.append(await nc.subscribe(subject, cb=printer.on_msg))
        await sync_with_server(nc, args.timeout)
    problem = permission_problem(nc)
    if problem is not None:
        print(
            f"relay tail: the {ACTOR} user may not subscribe to {', '.join(args.subjects)}: "
            f"{problem}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    print(
        f"tailing {', '.join(args.subjects)} on {redact_url(args.nats)}",
        file=sys.stderr,
        flush=True,
    )
    if args.for_s is None:
        await stop.wait()
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=args.for_s)
    stop.set()
    for sub in subs:
        with contextlib.suppress(*UNREACHABLE):
            await sub.unsubscribe()
    print(f"{printer.printed} message(s)", file=sys.stderr, flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_tail(args))
    except UNREACHABLE as exc:
        print(f"relay tail: {describe_failure(args.nats, args.timeout, exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
