"""`relay attest hash` / `domain-hash`: the user_data an enclave must attest for some params,
and the DomainHash of raw bytes.

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
        default=None,
        help="DomainHash format (v1: PR-era relays, the default for --protocol n1; v2: "
        "length-prefixed, the default for --protocol current)",
    )
    parser.add_argument(
        "--protocol",
        choices=["n1", "current"],
        default="n1",
        help="params field set: n1 (the seed's) or current (with enclave_config and "
        "signed_compute_requests, PROTOCOL 10.12)",
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
        bind = binding.bind_current if args.protocol == "current" else binding.bind
        version: binding.DomainHashVersion = args.domain_hash or (
            "v2" if args.protocol == "current" else "v1"
        )
        bound = bind(args.method, raw, version)
    except GoJSONError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    out.write(bound.user_data.hex().encode() + b"\n")
    if args.show_json:
        out.write(bound.params_json + b"\n")
    out.flush()
    return 0


def register_domain_hash(attest_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `domain-hash` under `relay attest`: DomainHash(tag, raw bytes), v1 or v2."""
    parser = attest_sub.add_parser(
        "domain-hash",
        help="print DomainHash(tag, data) of a file's raw bytes (hex)",
        description="DomainHash v1 (separator, \\n, tag, \\n, data) or v2 (separator, then "
        "tag and data each after its 8-byte big-endian length), PROTOCOL 3.1 and 10.9. "
        "Exit codes: 0 done, 2 usage (including an unreadable file).",
    )
    parser.add_argument("--tag", required=True, help="the domain tag, e.g. ConfidentialSecretsGet")
    parser.add_argument("--data", required=True, metavar="FILE", help="the data ('-' for stdin)")
    parser.add_argument("--domain-hash", required=True, choices=["v1", "v2"], help="format")
    parser.set_defaults(func=_domain_hash)


def _domain_hash(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.data == "-" else Path(args.data).read_bytes()
    except OSError as exc:
        print(f"relay attest domain-hash: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    print(binding.domain_hash(args.tag, data, args.domain_hash).hex())
    return 0
