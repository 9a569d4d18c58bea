"""`relay response hash|sign`: a current-protocol node's signed answer, offline (PROTOCOL 10.2-10.5).

Anyone can check a node or an enclave against the relay without a bus: feed the params the
enclave sent and the unsigned result a node computed (`{"secrets":[...]}` or
`{"payload":...,"error":...}`), get the response hash `H` or the signed result JSON, exactly the
bytes Go's `json.Marshal` writes. Exit codes: 0 done; 1 the input is rejected, with the upstream
text on stderr (Go's JSON error, or `invalid ... request params: <reason>` from Validate); 2 usage
(bad arguments, an unreadable file, an unusable key file).
"""

from __future__ import annotations

import argparse
import sys

from schemas import current, rpc
from schemas.gojson import GoJSONError
from workers.cli.inputs import InputError, read_bytes, read_key
from workers.protocol import signed

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "response",
        help="offline: the current protocol's response hash and node signature",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = group.add_subparsers(dest="response_command", required=True)
    hash_cmd = cmds.add_parser("hash", help="print the response hash H (hex)")
    _inputs(hash_cmd)
    hash_cmd.set_defaults(func=_hash)
    sign = cmds.add_parser("sign", help="print the signed result JSON (Go's bytes)")
    _inputs(sign)
    sign.add_argument(
        "--key", required=True, metavar="FILE", help="the node's 32-byte Ed25519 seed, hex, 0600"
    )
    sign.set_defaults(func=_sign)


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, choices=rpc.METHODS, help="JSON-RPC method")
    parser.add_argument(
        "--params",
        required=True,
        metavar="FILE",
        help="the params JSON the enclave sent ('-': stdin)",
    )
    parser.add_argument(
        "--result", required=True, metavar="FILE", help="the unsigned result JSON ('-': stdin)"
    )


def _decode(
    method: str, params: bytes, result: bytes
) -> tuple[
    current.SecretsRequestParams | current.CapabilityRequestParams,
    rpc.SecretsResponseResult | rpc.CapabilityResponseResult,
]:
    if method == rpc.MethodSecretsGet:
        return current.decode_secrets_params(params), current.decode_secrets_result(result)
    return current.decode_capability_params(params), current.decode_capability_result(result)


def _run(args: argparse.Namespace, *, signing: bool) -> int:
    name = f"relay response {'sign' if signing else 'hash'}"
    try:
        if args.params == "-" and args.result == "-":
            raise InputError("--params and --result cannot both be stdin")
        key = read_key(args.key) if signing else None
        raw_params, raw_result = read_bytes(args.params), read_bytes(args.result)
    except InputError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        params, result = _decode(args.method, raw_params, raw_result)
        if key is None:
            output = signed.response_hash(args.method, params, result).hex().encode()
        else:
            output = signed.sign_result_json(key, args.method, params, result)
    except (GoJSONError, signed.SignedProtocolError) as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_REJECTED
    sys.stdout.buffer.write(output + b"\n")
    sys.stdout.buffer.flush()
    return EXIT_OK


def _hash(args: argparse.Namespace) -> int:
    return _run(args, signing=False)


def _sign(args: argparse.Namespace) -> int:
    return _run(args, signing=True)
