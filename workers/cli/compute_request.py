"""`relay compute-request hash|authorize`: Workflow-DON authorization, offline (PROTOCOL 10.8).

`hash FILE` prints `H_cr` of one SignedComputeRequest JSON object (the `signature` and
`perNodeData` are not hashed). `authorize` runs the relay's check of a secrets request's
`signed_compute_requests` against a Workflow DON given as its F and its members' public keys
(one hex key a line, in registry order): F+1 distinct member signatures, 2F+1 with `--bft`,
then the signed owner and workflow against the params. Exit codes: 0 done / authorised; 1
rejected, with the upstream text on stderr (Go's JSON error, or the relay's -32602 text);
2 usage (bad arguments, an unreadable file, a malformed member list).
"""

from __future__ import annotations

import argparse
import sys

from schemas import current
from schemas.gojson import GoJSONError
from workers.cli.inputs import InputError, read_bytes, read_members
from workers.protocol import compute_request

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "compute-request",
        help="offline: Workflow-DON compute requests (hash, authorization)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = group.add_subparsers(dest="compute_request_command", required=True)
    hash_cmd = cmds.add_parser("hash", help="print a signed compute request's hash (hex)")
    hash_cmd.add_argument("file", help="one SignedComputeRequest JSON object ('-': stdin)")
    hash_cmd.set_defaults(func=_hash)
    auth = cmds.add_parser("authorize", help="check signed_compute_requests against a DON")
    auth.add_argument(
        "--params", required=True, metavar="FILE", help="secrets params JSON ('-': stdin)"
    )
    auth.add_argument("--don-f", required=True, type=_non_negative, help="the Workflow DON's F")
    auth.add_argument("--members", required=True, metavar="FILE", help="one hex public key a line")
    auth.add_argument("--bft", action="store_true", help="require 2F+1 signers instead of F+1")
    auth.set_defaults(func=_authorize)


def _hash(args: argparse.Namespace) -> int:
    try:
        raw = read_bytes(args.file)
    except InputError as exc:
        print(f"relay compute-request hash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        request = current.decode_signed_compute_request(raw)
    except GoJSONError as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_REJECTED
    print(compute_request.compute_request_hash(request).hex())
    return EXIT_OK


def _authorize(args: argparse.Namespace) -> int:
    try:
        members = read_members(args.members)
        raw = read_bytes(args.params)
    except InputError as exc:
        print(f"relay compute-request authorize: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = current.decode_secrets_params(raw)
        done = compute_request.authorize(params, members, args.don_f, require_bft=args.bft)
    except (GoJSONError, compute_request.AuthorizationError) as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_REJECTED
    print(
        f"authorized: {len(done.signers)} unique signers, need {done.threshold}; "
        f"compute request {done.compute_request_hash.hex()}"
    )
    return EXIT_OK
