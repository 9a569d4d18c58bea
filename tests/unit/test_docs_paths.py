"""Every repository path the docs name exists, so a moved module cannot leave the docs behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PATH = re.compile(r"\b(?:workers|schemas|tests|deploy)/[A-Za-z0-9_./@-]*[A-Za-z0-9_/]")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    """A path such as `workers/registry/view.py` in a doc points at a file or folder in the repo."""
    named = {match.split(":")[0] for match in PATH.findall(doc.read_text())}
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
