"""`relay enclave pick`: the enclave's choice from a gateway bundle, offline (PROTOCOL 10.6).

`--params` is the params JSON the enclave sent (its `enclave_config` gives the signers and F;
`attestation` is ignored); `--bundle` is the gateway's answer: the whole JSON-RPC response or
just its `result` (`{"responses":[...]}`). On success it prints one JSON object (`hash`,
`signers`, `index`, `result`) and exits 0; no result with F+1 valid distinct signers is exit 1
with the reason on stderr; a usage problem (arguments, unreadable or malformed files) exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas import current, rpc
from schemas.gojson_errors import GoJSONError
from workers.enclave import bundle
from workers.enclave.errors import AnswerError

EXIT_PICKED, EXIT_NO_QUORUM, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    """Printed on stderr, exit 2."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    enclave = sub.add_parser("enclave", help="enclave-side tools (docs/enclave-client.md)")
    cmds = enclave.add_subparsers(dest="enclave_command", required=True)
    pick = cmds.add_parser(
        "pick", help="pick the result F+1 configured signers signed from a gateway bundle"
    )
    pick.add_argument("--method", required=True, choices=rpc.METHODS)
    pick.add_argument("--params", required=True, type=Path, help="the params JSON sent")
    pick.add_argument("--bundle", required=True, type=Path, help="the gateway's answer")
    pick.set_defaults(func=_pick)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from exc


def _params(method: str, raw: bytes) -> bundle.Params:
    try:
        if method == rpc.MethodSecretsGet:
            return current.decode_secrets_params(raw)
        return current.decode_capability_params(raw)
    except GoJSONError as exc:
        raise _Usage(f"--params is not {method} params: {exc}") from exc


def _bundle_bytes(raw: bytes) -> bytes:
    """The bundle itself, whether the file holds the JSON-RPC response or only its result."""
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        raise _Usage(f"--bundle is not JSON: {exc}") from exc
    if isinstance(value, dict) and "responses" not in value and "jsonrpc" in value:
        if value.get("error") is not None:
            raise _Usage(f"--bundle is an error answer, not a bundle: {value['error']}")
        return json.dumps(value.get("result")).encode()
    return raw


def _pick(args: argparse.Namespace) -> int:
    try:
        params = _params(args.method, _read(args.params))
        raw = _bundle_bytes(_read(args.bundle))
    except _Usage as exc:
        print(f"relay enclave pick: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        entries = bundle.decode_bundle(args.method, raw)
        chosen = bundle.select(args.method, params, entries)
    except AnswerError as exc:
        print(f"relay enclave pick: {exc}", file=sys.stderr)
        return EXIT_NO_QUORUM
    if isinstance(chosen.result, rpc.SecretsResponseResult):
        result = json.loads(rpc.encode_secrets_result(chosen.result))
    else:
        result = json.loads(rpc.encode_capability_result(chosen.result))
    print(
        json.dumps(
            {
                "hash": chosen.hash.hex(),
                "signers": chosen.signers,
                "index": chosen.index,
                "signer_keys": [k.hex() for k in chosen.signer_keys],
                "result": result,
            }
        )
    )
    return EXIT_PICKED
