"""`relay bench attest`: a quick real run through the CLI, and the harness's honesty checks."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from workers.attestation import AttestationError, MeasurementIndex, TrustRoots, Verifier
from workers.bench.attest import Settings, run, self_check
from workers.bench.docs import BenchDoc, load_docs
from workers.bench.peers import PEERS, PeerSpec, Verdict, open_peers
from workers.cli import main

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nitro"
QUICK = Settings(rounds=1, seconds=0.01)
DOCS = load_docs(VECTORS)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_run_reports_every_contender_with_sane_rates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One JSON object with the issue's keys; warm beats cold, ratios are positive, affinity restored."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    code, out, _ = cli(capsys, "bench", "attest", "--json", "--rounds", "2", "--seconds", "0.02")
    assert code == 0
    report = json.loads(out)
    for key in ("warm_per_s", "cold_per_s", "naive_per_s", "sets_1000_over_1", "peers"):
        assert key in report
    # Warm proves one signature per call, cold and naive five: a gap no noise can close.
    assert report["warm_per_s"] > 2 * report["cold_per_s"] > 0
    assert report["naive_per_s"] > 0
    assert 0.5 < report["sets_1000_over_1"] < 2.0
    assert set(report["peers"]) == {spec.name for spec in PEERS}
    for name, rate in report["peers"].items():
        measured = report["peer_status"][name]["status"] == "measured"
        assert (rate is not None and rate > 0) if measured else rate is None
    assert set(report["targets"]) == {
        "warm_at_least_1300_per_s",
        "cold_at_least_best_peer",
        "sets_1000_within_10_percent",
    }
    assert report["rounds"] == 2
    assert report["documents"]
    assert set(report["documents"]) <= {d.name for d in DOCS}
    if affinity is not None:
        assert os.sched_getaffinity(0) == affinity


def test_human_output_names_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json a table and the three targets are printed."""
    code, out, _ = cli(capsys, "bench", "attest", "--rounds", "1", "--seconds", "0.01")
    assert code == 0
    assert "naive baseline" in out
    assert "warm >= 1,300/s on one core" in out
    assert "1,000 trusted sets within 10% of 1 set" in out


def test_a_directory_without_documents_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit 2 and a reason on stderr when --docs holds nothing that verifies."""
    code, out, err = cli(capsys, "bench", "attest", "--docs", str(tmp_path))
    assert code == 2
    assert out == ""
    assert "no document" in err


def test_zero_rounds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse rejects --rounds 0 with exit 2."""
    code, _, err = cli(capsys, "bench", "attest", "--rounds", "0")
    assert code == 2
    assert "at least 1" in err


def _spec(name: str, build: Any) -> PeerSpec:
    # "json" stands in for an installed distribution: any importable module will do.
    return PeerSpec(name=name, module="json", note="test peer", build=build)


def _ours_except(skip: str) -> Any:
    """A peer built on our verifier that refuses documents whose name contains `skip`."""

    def build(module: ModuleType, root: Path, stack: contextlib.ExitStack) -> Verdict:
        verifier = Verifier(TrustRoots.aws())

        def verdict(doc: BenchDoc, at: float) -> str | None:
            if skip in doc.name:
                return "refused by policy"
            try:
                verifier.verify(doc.data, now=at, trusted=MeasurementIndex.from_sets([doc.pcrs]))
            except AttestationError as exc:
                return exc.reason
            return None

        return verdict

    return build


def test_a_missing_peer_is_reported_and_the_run_still_completes() -> None:
    """A peer whose module is absent shows as not installed; no best peer, no cold-vs-peer verdict."""
    ghost = PeerSpec(
        name="ghost-verifier",
        module="no_such_module_for_relay_bench",
        note="",
        build=_ours_except(""),
    )
    report = run(docs_dir=VECTORS, settings=QUICK, peer_specs=(ghost,))
    assert report["peers"] == {"ghost-verifier": None}
    assert report["peer_status"]["ghost-verifier"]["status"].startswith("not installed")
    assert report["best_peer"] is None
    assert report["targets"]["cold_at_least_best_peer"] is None
    assert len(report["documents"]) == len(DOCS)


def test_a_peer_that_accepts_forgeries_is_not_timed() -> None:
    """A peer saying yes to everything fails its self-check and gets no rate."""

    def build(module: ModuleType, root: Path, stack: contextlib.ExitStack) -> Verdict:
        return lambda doc, at: None

    report = run(docs_dir=VECTORS, settings=QUICK, peer_specs=(_spec("yes-man", build),))
    assert report["peers"] == {"yes-man": None}
    status = report["peer_status"]["yes-man"]["status"]
    assert "failed its self-check" in status
    assert "flipped signature byte" in status
    assert "30 days after" in status


def test_documents_a_measured_peer_refuses_are_left_out_for_everyone() -> None:
    """Contenders are timed on the same documents: those an honest peer rejects are excluded."""
    report = run(
        docs_dir=VECTORS, settings=QUICK, peer_specs=(_spec("picky", _ours_except("debug")),)
    )
    debug = {d.name for d in DOCS if "debug" in d.name}
    assert debug
    assert set(report["excluded_documents"]) == debug
    assert not debug & set(report["documents"])
    assert report["peers"]["picky"] is not None
    assert report["best_peer"] == "picky"
    assert report["vs_best_peer"]["picky"] == 1.0


def test_self_check_catches_a_verifier_that_ignores_the_time() -> None:
    """A verdict that always verifies at the document's own time is caught by the shifted times."""
    verifier = Verifier(TrustRoots.aws())

    def ignores_time(doc: BenchDoc, at: float) -> str | None:
        try:
            verifier.verify(doc.data, now=doc.at)
        except AttestationError as exc:
            return exc.reason
        return None

    result = self_check(ignores_time, DOCS[:2])
    assert result.accepted == [d.name for d in DOCS[:2]]
    assert any("30 days after" in p for p in result.problems)
    assert any("30 days before" in p for p in result.problems)
    assert not any("flipped" in p for p in result.problems)


def test_the_epsilon_adapter_verifies_at_the_chosen_time_and_restores_the_clock() -> None:
    """With the bench extra: accepted at the document's time, refused a day later, clock put back."""
    module = pytest.importorskip("epsilon_verifier.verifier")
    spec = next(s for s in PEERS if s.name == "epsilon-attestation-verifier")
    doc = next(d for d in DOCS if d.name.startswith("base_"))
    pem = x509.load_der_x509_certificate(TrustRoots.aws().ders[0]).public_bytes(Encoding.PEM)
    with open_peers(pem, (spec,)) as peers:
        verdict = peers[0].verdict
        assert verdict is not None
        assert verdict(doc, doc.at) is None
        assert verdict(doc, doc.at + 86_400) is not None
        assert module.datetime is dt.datetime
