"""The benchmark's input: real Nitro documents and their sidecars (time to verify at, PCRs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.attestation import PcrSet

REPO_ROOT = Path(__file__).resolve().parents[2]


class BenchError(Exception):
    """The benchmark cannot run honestly (bad input, or a contender gave a wrong verdict)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchDoc:
    name: str
    data: bytes
    at: float  # the sidecar's verify_at_unix_s: the documents are archived, so not "now"
    pcrs: PcrSet


def default_docs_dir() -> Path:
    """The repo's copy of the vectors, else the shared originals next to the repo."""
    for candidate in (
        REPO_ROOT / "tests" / "vectors" / "nitro",
        REPO_ROOT.parent / "shared" / "nitro",
    ):
        if candidate.is_dir():
            return candidate
    raise BenchError("no Nitro documents found: pass --docs DIR")


def load_docs(directory: Path) -> list[BenchDoc]:
    """Every document whose sidecar says it verifies against the AWS root G1, sorted by name."""
    if not directory.is_dir():
        raise BenchError(f"{directory} is not a directory")
    docs: list[BenchDoc] = []
    for sidecar in sorted(directory.glob("*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"{sidecar}: unreadable sidecar: {exc}") from exc
        if (
            not isinstance(meta, dict)
            or meta.get("expected_to_verify_against_aws_root_g1") is not True
        ):
            continue
        docs.append(_doc(directory, sidecar, meta))
    if not docs:
        raise BenchError(f"no document in {directory} is expected to verify (no sidecar says so)")
    return docs


def _doc(directory: Path, sidecar: Path, meta: dict[str, Any]) -> BenchDoc:
    try:
        at = meta["verify_at_unix_s"]
        if type(at) not in (int, float):
            raise TypeError("verify_at_unix_s is not a number")
        pcrs = PcrSet(
            pcr0=bytes.fromhex(meta["pcr0"]),
            pcr1=bytes.fromhex(meta["pcr1"]),
            pcr2=bytes.fromhex(meta["pcr2"]),
        )
        data = (directory / str(meta["file"])).read_bytes()
        return BenchDoc(
            name=str(meta.get("name", sidecar.stem)), data=data, at=float(at), pcrs=pcrs
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise BenchError(f"{sidecar}: {type(exc).__name__}: {exc}") from exc
