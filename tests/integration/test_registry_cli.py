"""`relay registry load` and `relay registry show` as an operator runs them, against a real server."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from workers.registry.store import read_seed_file, to_seed
from workers.registry.view import build_view
from workers.runtime.natsserver import NatsServer, free_port

EXAMPLE = REPO_ROOT / "deploy" / "registry.example.json"
RELAY = Path(sys.executable).parent / "relay"  # the console script of this venv
_ids = itertools.count()


def relay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELAY), "registry", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def target(nats_server: NatsServer) -> list[str]:
    """Connection options naming this module's server and a bucket of this test's own."""
    return ["--nats", nats_server.url, "--bucket", f"cli_reg_{next(_ids)}"]


def test_load_then_show_json_round_trips_the_seed(target: list[str]) -> None:
    """What `load` writes, `show --json` prints back as the same registry."""
    loaded = relay("load", str(EXAMPLE), *target)
    assert loaded.returncode == 0, loaded.stderr
    assert "(created the bucket): 11 written, 0 deleted, 0 unchanged" in loaded.stdout

    shown = relay("show", "--json", *target)
    assert shown.returncode == 0, shown.stderr
    expected = to_seed(build_view(read_seed_file(EXAMPLE), revision=1))
    assert json.loads(shown.stdout) == expected


def test_loading_the_same_seed_again_writes_nothing(target: list[str]) -> None:
    """Unchanged keys are not rewritten, so running actors see no new revision."""
    assert relay("load", str(EXAMPLE), *target).returncode == 0
    again = relay("load", str(EXAMPLE), *target)
    assert again.returncode == 0, again.stderr
    assert ": 0 written, 0 deleted, 11 unchanged" in again.stdout


def test_show_prints_dons_nodes_and_the_lookups_served(target: list[str]) -> None:
    """The human view names each DON and what the measurements lookup would answer."""
    assert relay("load", str(EXAMPLE), *target).returncode == 0
    shown = relay("show", *target)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("DON 1 'relay-don': F=1") for line in lines)
    assert "  hosts confidential-workflows@1.0.0-alpha: 1 enclave(s), 1 trusted value(s)" in lines
    assert "node node-0: workflow DON 2" in lines
    assert (
        "lookup measurements (confidential-workflows@1.0.0-alpha): 1 trusted value(s), the AWS root"
    ) in lines


def test_a_smaller_seed_prunes_what_it_no_longer_mentions(
    target: list[str], tmp_path: Path
) -> None:
    """Loading a seed without the echo DON deletes that DON and its config from the bucket."""
    assert relay("load", str(EXAMPLE), *target).returncode == 0
    doc: dict[str, Any] = json.loads(EXAMPLE.read_text())
    doc["dons"] = [d for d in doc["dons"] if d["name"] != "capability-don"]
    smaller = tmp_path / "smaller.json"
    smaller.write_text(json.dumps(doc))

    loaded = relay("load", str(smaller), *target)
    assert loaded.returncode == 0, loaded.stderr
    assert ": 0 written, 2 deleted, 9 unchanged" in loaded.stdout
    shown = json.loads(relay("show", "--json", *target).stdout)
    assert [d["name"] for d in shown["dons"]] == ["relay-don", "workflow-don", "vault-don"]


def test_an_invalid_seed_is_refused_and_nothing_is_written(
    target: list[str], tmp_path: Path
) -> None:
    """A seed with a bad PCR exits 2 with the problem, and the bucket is not even created."""
    doc: dict[str, Any] = json.loads(EXAMPLE.read_text())
    doc["dons"][1]["configs"]["confidential-workflows@1.0.0-alpha"]["Enclaves"][0]["trustedValues"][
        0
    ]["pcr1"] = "xyz"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))

    loaded = relay("load", str(bad), *target)
    assert loaded.returncode == 2
    assert "Enclaves[0].trustedValues[0]: pcr1 must be a non-empty hex string" in loaded.stderr
    shown = relay("show", *target)
    assert shown.returncode == 1
    assert "the registry bucket does not exist" in shown.stderr


def test_show_without_a_server_exits_1_with_one_clear_line() -> None:
    """No server listening: a bounded wait, then a single message instead of retry noise."""
    shown = relay("show", "--nats", f"nats://127.0.0.1:{free_port()}", "--timeout", "1")
    assert shown.returncode == 1
    assert shown.stderr.strip().endswith("no NATS server answered")
    assert len(shown.stderr.strip().splitlines()) == 1
