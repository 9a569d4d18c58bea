"""Adapters for the PyPI Nitro verifiers that `pip install '.[bench]'` brings in.

Each adapter verifies one document against the AWS root G1 at a time the benchmark chooses, and
applies the same policy as our verifier with one trusted set (PCR0/1/2 equal the sidecar's).
A verdict is None when the document is accepted, else the peer's reason. `attest.py` self-checks
every adapter (real documents accepted, tampered and time-shifted ones rejected) before timing it.

- epsilon-attestation-verifier 1.1.0: `verify_attestation(b64, expected_pcr0..2,
  aws_root_cert_path=...)`. It has no time parameter: its chain check reads
  `datetime.now(timezone.utc)` through the name `datetime` in `epsilon_verifier.verifier`, so that
  name is swapped for a subclass whose `now()` returns the chosen time, only for the duration of
  each call (its `allow_expired` switch would skip the validity check instead). Without
  `aws_root_cert_path` it downloads the root from AWS, so we hand it the pinned root as a PEM file.
- attested-relay 0.2.0a4: `attested_relay.verify._authenticated_document(raw, pcr0, now=...)` is
  its whole Nitro check (COSE, chain via OpenSSL at `now`, signature, PCR0 pin). Its public
  `verify_document` adds a live-session binding (client nonce, TLS key, its own JSON policy in
  user_data) that third-party documents cannot carry. It refuses debug-mode documents (PCR0/1/2/4
  must be non-zero) and documents more than 5 minutes from `now`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from workers.bench.docs import BenchDoc

Verdict = Callable[[BenchDoc, float], str | None]
"""(document, verification time in UNIX seconds) -> None when accepted, else why not."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerSpec:
    name: str  # the PyPI distribution
    module: str  # what to import
    note: str  # how it is called, in one line, for the report
    build: Callable[[ModuleType, Path, contextlib.ExitStack], Verdict]


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    name: str
    note: str
    version: str | None
    verdict: Verdict | None  # None when the peer is not installed


def _epsilon(module: ModuleType, root_pem: Path, stack: contextlib.ExitStack) -> Verdict:
    target: Any = module  # untyped third-party module
    real_datetime: Any = target.datetime
    clock = _frozen_clock(real_datetime)
    # It logs every rejection at ERROR (the self-check provokes some); keep the report clean.
    quiet = logging.getLogger("epsilon_verifier")
    stack.callback(quiet.setLevel, quiet.level)
    quiet.setLevel(logging.CRITICAL + 1)
    root_path = str(root_pem)

    def verdict(doc: BenchDoc, at: float) -> str | None:
        clock.at = dt.datetime.fromtimestamp(at, dt.UTC)
        encoded = base64.b64encode(doc.data).decode()
        target.datetime = clock
        try:
            result = target.verify_attestation(
                encoded,
                expected_pcr0=doc.pcrs.pcr0.hex(),
                expected_pcr1=doc.pcrs.pcr1.hex(),
                expected_pcr2=doc.pcrs.pcr2.hex(),
                aws_root_cert_path=root_path,
            )
        except Exception as exc:  # it catches its own errors; anything else is a rejection too
            return f"{type(exc).__name__}: {exc}"
        finally:
            target.datetime = real_datetime
        return None if result.valid is True else str(result.error)

    return verdict


def _frozen_clock(real: Any) -> Any:
    class FrozenClock(real):  # type: ignore[misc]
        """`datetime` whose now() is the benchmark's chosen time; everything else unchanged."""

        at: ClassVar[dt.datetime] = dt.datetime.fromtimestamp(0, dt.UTC)

        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:
            return cls.at if tz is not None else cls.at.replace(tzinfo=None)

    return FrozenClock


def _attested_relay(module: ModuleType, root_pem: Path, stack: contextlib.ExitStack) -> Verdict:
    # It always uses its own bundled root (nitro-root.pem, fingerprint-checked on every call).
    authenticate = module._authenticated_document

    def verdict(doc: BenchDoc, at: float) -> str | None:
        try:
            fields = authenticate(
                doc.data, doc.pcrs.pcr0.hex(), now=dt.datetime.fromtimestamp(at, dt.UTC)
            )
            pcrs = fields["pcrs"]
            # It pins PCR0 only; PCR1/2 are compared here so every contender applies one policy.
            if (pcrs.get(1), pcrs.get(2)) != (doc.pcrs.pcr1, doc.pcrs.pcr2):
                return "PCR1/PCR2 differ from the trusted set"
        except Exception as exc:  # its errors are ValueError, OpenSSL's and cryptography's
            return f"{type(exc).__name__}: {exc}"
        return None

    return verdict


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec(
        name="epsilon-attestation-verifier",
        module="epsilon_verifier.verifier",
        note="verify_attestation(); its datetime.now() frozen at the chosen time during each call",
        build=_epsilon,
    ),
    PeerSpec(
        name="attested-relay",
        module="attested_relay.verify",
        note="_authenticated_document(now=...), its Nitro check; rejects debug-mode PCRs by design",
        build=_attested_relay,
    ),
)


def load_peer(spec: PeerSpec, root_pem: Path, stack: contextlib.ExitStack) -> Peer:
    """Import and wrap one peer; a peer that is not installed comes back with no verdict."""
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError:
        return Peer(name=spec.name, note="not installed", version=None, verdict=None)
    try:
        version: str | None = importlib.metadata.version(spec.name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return Peer(
        name=spec.name, note=spec.note, version=version, verdict=spec.build(module, root_pem, stack)
    )


@contextlib.contextmanager
def open_peers(root_pem: bytes, specs: tuple[PeerSpec, ...] = PEERS) -> Iterator[list[Peer]]:
    """Every peer, ready to call, for the duration of the block (temp files and hooks undone)."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relay-bench-")))
        root_path = workdir / "aws-nitro-root-g1.pem"
        root_path.write_bytes(root_pem)
        yield [load_peer(spec, root_path, stack) for spec in specs]
