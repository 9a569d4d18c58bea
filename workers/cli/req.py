"""`relay req SUBJECT [BODY]`: one request/reply, what ops would do with `nats req`.

The body is the argument, `@FILE`, or `-` for standard input (default: empty). The reply is
printed as `relay tail` prints a message (decoded subject, headers, JSON body), with the time it
took. It connects as `--as ACTOR` (default `gateway`, the user that may send JSON-RPC to the
nodes' rpc subjects; `ops` may send only discovery requests), credentials from the environment
(`docs/security.md`). Exit 0 on a reply, 1 when nobody answers, the request times out, it is not
permitted, or NATS is unreachable, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nats.errors

from workers.cli import tail_format
from workers.cli.args import positive_float
from workers.cli.tail import EXIT_OK, EXIT_UNREACHABLE, describe_failure, nats_url_arg
from workers.runtime.bus import StageTimeout, StageUnavailable, connect, request_msg
from workers.runtime.credentials import ACTORS, CredentialsError, credentials_for
from workers.runtime.loop import run_loop

EXIT_USAGE = 2


def _subject(text: str) -> str:
    problem = tail_format.check_subject(text)
    if problem is not None or "*" in text.split(".") or ">" in text.split("."):
        raise argparse.ArgumentTypeError(
            f"invalid subject {text!r}: {problem or 'a request needs a subject without wildcards'}"
        )
    return text


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a header is NAME=VALUE, got {text!r}")
    return name, value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "req",
        help="send one request and print the reply, decoded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("subject", metavar="SUBJECT", type=_subject)
    p.add_argument("body", metavar="BODY", nargs="?", default="", help="text, @FILE or -")
    nats_url_arg(p)
    p.add_argument(
        "--as", dest="actor", default="gateway", choices=ACTORS, help="NATS user (gateway)"
    )
    p.add_argument(
        "--wait", type=positive_float, default=5.0, help="seconds to wait for the reply (5)"
    )
    p.add_argument("-H", "--header", action="append", type=_header, default=[], help="NAME=VALUE")
    p.add_argument("--full", action="store_true", help="do not shorten long base64 fields")
    p.set_defaults(func=run)


def _body(spec: str) -> bytes:
    if spec == "-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        return Path(spec[1:]).read_bytes()
    return spec.encode()


async def _request(args: argparse.Namespace, body: bytes) -> int:
    user, password = credentials_for(args.actor, args.party)
    try:
        nc = await connect(
            args.nats,
            actor=args.actor,
            user=user,
            password=password,
            connect_timeout_s=args.timeout,
            initial_timeout_s=args.timeout,
        )
    except CredentialsError as exc:  # an identity file named but unusable: say which
        print(f"relay req: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ConnectionError, nats.errors.Error, OSError, TimeoutError) as exc:
        print(f"relay req: {describe_failure(args.nats, args.timeout, exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        started = time.perf_counter()
        try:
            msg = await request_msg(
                nc, args.subject, body, timeout_s=args.wait, headers=dict(args.header) or None
            )
        except StageUnavailable:
            print(f"relay req: nobody answers on {args.subject}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except nats.errors.MaxPayloadError:
            print(
                f"relay req: the body is {len(body)} bytes, over the server's limit of"
                f" {nc.max_payload}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        except StageTimeout:
            denied = nc.last_error
            why = f" ({denied})" if denied and "permission" in str(denied).lower() else ""
            print(f"relay req: no reply within {args.wait:g}s{why}", file=sys.stderr)
            return EXIT_UNREACHABLE
        elapsed_ms = (time.perf_counter() - started) * 1000
        # The reply's own subject is our inbox: show the request's, decoded, instead.
        record = tail_format.format_message(
            args.subject,
            msg.data,
            received=datetime.now(UTC),
            reply=None,
            headers=msg.headers,
            full=args.full,
        )
        print(tail_format.render({**record, "elapsed_ms": round(elapsed_ms, 3)}))
        return EXIT_OK
    finally:
        await nc.close()


def run(args: argparse.Namespace) -> int:
    try:
        body = _body(args.body)
    except OSError as exc:
        print(f"relay req: cannot read the body: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_loop(_request(args, body))
