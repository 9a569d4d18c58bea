"""`relay attest hash`: the user_data an enclave must put in its attestation for some params.

Operators use it to check an enclave build against the relay: feed the params JSON the
enclave sends (with or without its attestation) and compare the printed hash with the
document's user_data. Exit codes: 0 done, 1 the params do not decode (Go's reason on stderr,
as the relay would answer -32602), 2 usage errors (including an unreadable file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas import rpc
from schemas.gojson import GoJSONError
from workers.protocol import binding


def register_hash(attest_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `hash` under `relay attest`."""
    parser = attest_sub.add_parser(
        "hash",
        help="print the attestation binding hash (expected user_data) of request params",
        description=__doc__,
    )
    parser.add_argument("--method", required=True, choices=rpc.METHODS, help="JSON-RPC method")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--params", metavar="FILE", help="file holding the params JSON ('-' for stdin)"
    )
    source.add_argument(
        "stdin", nargs="?", choices=["-"], default=None, help="read the params JSON from stdin"
    )
    parser.add_argument(
        "--domain-hash",
        choices=["v1", "v2"],
        default="v1",
        help="DomainHash format (v1: PR-era relays, the default; v2: length-prefixed)",
    )
    parser.add_argument(
        "--show-json",
        action="store_true",
        help="also print the re-marshalled params that were hashed, on a second line",
    )
    parser.set_defaults(func=_run)


def _read(args: argparse.Namespace) -> bytes:
    source = args.params if args.params is not None else args.stdin
    if source == "-":
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def _run(args: argparse.Namespace) -> int:
    try:
        raw = _read(args)
    except OSError as exc:
        print(f"relay attest hash: cannot read params: {exc}", file=sys.stderr)
        return 2
    if raw.strip(b" \t\r\n") == b"null":
        # The relay sees a null params value as absent before it decodes anything.
        print("missing params", file=sys.stderr)
        return 1
    try:
        bound = binding.bind(args.method, raw, args.domain_hash)
    except GoJSONError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    out.write(bound.user_data.hex().encode() + b"\n")
    if args.show_json:
        out.write(bound.params_json + b"\n")
    out.flush()
    return 0
