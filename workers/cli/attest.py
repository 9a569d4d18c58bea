"""`relay attest verify|inspect|hash`: offline attestation tools for operators and tests.

`verify` exits 0 when the document is valid, 1 when it is rejected, 2 on a usage error (bad
arguments, an unreadable file, bad hex or PEM); it prints the outcome as one JSON object.
`inspect` prints the decoded document without verifying anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from workers.attestation import (
    AttestationError,
    MeasurementIndex,
    TrustRoots,
    VerifiedDocument,
    Verifier,
)
from workers.attestation.chain import parse_certificate
from workers.attestation.verifier import decode_document
from workers.cli.attest_hash import register_domain_hash, register_hash

EXIT_VALID, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    """A usage problem: printed on stderr, exit 2."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    attest = sub.add_parser("attest", help="offline attestation tools")
    cmds = attest.add_subparsers(dest="attest_command", required=True)

    verify = cmds.add_parser("verify", help="verify a Nitro attestation document (COSE_Sign1)")
    verify.add_argument("file", type=Path, help="the raw document (CBOR bytes)")
    verify.add_argument("--at", type=float, help="verification time, UNIX seconds (default: now)")
    verify.add_argument(
        "--root", type=Path, help="a NON-AWS root certificate (PEM or DER): development only"
    )
    verify.add_argument("--user-data", help="expected user_data, hex")
    verify.add_argument(
        "--pcrs", type=Path, help="JSON file: one PCR object {pcr0,pcr1,pcr2} or a list of them"
    )
    verify.add_argument(
        "--max-age", type=float, help="reject documents older/newer than this many seconds"
    )
    verify.set_defaults(func=_verify)

    inspect = cmds.add_parser("inspect", help="print a document's contents (no verification)")
    inspect.add_argument("file", type=Path)
    inspect.set_defaults(func=_inspect)

    register_hash(cmds)
    register_domain_hash(cmds)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror}") from exc


def _trusted(path: Path) -> MeasurementIndex:
    try:
        value = json.loads(_read(path))
    except ValueError as exc:
        raise _Usage(f"{path} is not JSON: {exc}") from exc
    values = value if isinstance(value, list) else [value]
    index = MeasurementIndex.from_json_values(json.dumps(v).encode() for v in values)
    if index.problems:
        raise _Usage(f"{path}: {index.problems[0]}")
    return index


def _iso(timestamp_ms: int) -> str | None:
    try:
        stamp = dt.datetime.fromtimestamp(timestamp_ms // 1000, dt.UTC)
    except (OverflowError, ValueError, OSError):  # a genuine doc may still claim year 300000
        return None
    return stamp.replace(microsecond=(timestamp_ms % 1000) * 1000).isoformat(
        timespec="milliseconds"
    )


def _cert_summary(der: bytes) -> dict[str, Any]:
    try:
        cert = parse_certificate(der)
    except AttestationError as exc:
        return {"error": exc.message}
    return {
        "subject": cert.subject,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "ca": cert.is_ca,
        "path_length": cert.path_length,
    }


def _number(value: float | None, name: str, *, positive: bool) -> None:
    if value is not None and (not math.isfinite(value) or (positive and value <= 0)):
        raise _Usage(f"{name} must be a finite{' positive' if positive else ''} number")


def _doc_json(doc: VerifiedDocument) -> dict[str, Any]:
    return {
        "module_id": doc.module_id,
        "timestamp_ms": doc.timestamp_ms,
        "timestamp": _iso(doc.timestamp_ms),
        "digest": doc.digest,
        "is_debug": doc.is_debug,
        "pcrs": {str(i): v.hex() for i, v in sorted(doc.pcrs.items())},
        "user_data": None if doc.user_data is None else doc.user_data.hex(),
        "nonce": None if doc.nonce is None else doc.nonce.hex(),
        "public_key": None if doc.public_key is None else doc.public_key.hex(),
    }


def _verify(args: argparse.Namespace) -> int:
    try:
        _number(args.at, "--at", positive=False)
        _number(args.max_age, "--max-age", positive=True)
        data = _read(args.file)
        roots = TrustRoots.development(_read(args.root)) if args.root else TrustRoots.aws()
        expected = bytes.fromhex(args.user_data) if args.user_data is not None else None
        trusted = _trusted(args.pcrs) if args.pcrs else None
    except ValueError as exc:  # bad hex, bad PEM
        print(f"relay attest verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _Usage as exc:
        print(f"relay attest verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = args.at if args.at is not None else time.time()
    try:
        doc = Verifier(roots, cache=False).verify(
            data, now=now, expected_user_data=expected, trusted=trusted, max_age_s=args.max_age
        )
    except AttestationError as exc:
        print(
            json.dumps(
                {
                    "valid": False,
                    "reason": exc.reason,
                    "category": exc.category,
                    "message": exc.message,
                    "verified_at": now,
                }
            )
        )
        return EXIT_REJECTED
    out = {
        "valid": True,
        "verified_at": now,
        "root": "development" if args.root else "aws-nitro-root-g1",
    }
    out.update(_doc_json(doc))
    if doc.matched is not None:
        out["matched_pcrs"] = json.loads(doc.matched.to_json())
    print(json.dumps(out))
    return EXIT_VALID


def _inspect(args: argparse.Namespace) -> int:
    try:
        data = _read(args.file)
    except _Usage as exc:
        print(f"relay attest inspect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cose, payload = decode_document(data)
    except AttestationError as exc:
        print(json.dumps({"valid_structure": False, "reason": exc.reason, "message": exc.message}))
        return EXIT_REJECTED
    print(
        json.dumps(
            {
                "protected": cose.protected.hex(),
                "signature": cose.signature.hex(),
                "module_id": payload.module_id,
                "digest": payload.digest,
                "timestamp_ms": payload.timestamp_ms,
                "timestamp": _iso(payload.timestamp_ms),
                "pcrs": {str(i): v.hex() for i, v in sorted(payload.pcrs.items())},
                # Leaf first, then the bundle from the instance CA up to the root.
                "chain": [
                    _cert_summary(der) for der in (payload.certificate, *payload.cabundle[::-1])
                ],
                "certificate": payload.certificate.hex(),
                "cabundle": [c.hex() for c in payload.cabundle],
                "public_key": None if payload.public_key is None else payload.public_key.hex(),
                "user_data": None if payload.user_data is None else payload.user_data.hex(),
                "nonce": None if payload.nonce is None else payload.nonce.hex(),
            },
            indent=2,
        )
    )
    return EXIT_VALID
