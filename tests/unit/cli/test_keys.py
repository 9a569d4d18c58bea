"""`relay keys new` and `relay keys public`: the key file and the printed peer id agree."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workers.cli import main
from workers.runtime import nodekey


def test_keys_new_writes_a_0600_file_and_prints_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed line is the hex public key of the seed written to --out, and nothing else."""
    out = tmp_path / "node-0.key"
    assert main(["keys", "new", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert printed == nodekey.peer_id(nodekey.load(out)) + "\n"
    assert out.read_text().strip() not in printed


def test_keys_new_refuses_to_replace_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing --out is exit 1 with a message on stderr, and the file is unchanged."""
    out = tmp_path / "node-0.key"
    out.write_text("keep me")
    assert main(["keys", "new", "--out", str(out)]) == 1
    assert "cannot create" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_keys_public_prints_the_peer_id_and_refuses_an_open_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`public` prints the same peer id as `new`; a 0644 file is exit 1."""
    out = tmp_path / "k"
    assert main(["keys", "new", "--out", str(out)]) == 0
    peer_id = capsys.readouterr().out
    assert main(["keys", "public", str(out)]) == 0
    assert capsys.readouterr().out == peer_id
    out.chmod(0o644)
    assert main(["keys", "public", str(out)]) == 1
    assert "too open" in capsys.readouterr().err


def test_keys_new_without_out_is_a_usage_error() -> None:
    """--out is required: argparse exits 2."""
    with pytest.raises(SystemExit) as caught:
        main(["keys", "new"])
    assert caught.value.code == 2
