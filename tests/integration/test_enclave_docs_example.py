"""The complete example of docs/enclave-client.md runs as printed and says what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "enclave-client.md"


def example() -> str:
    """The first python block after the heading `## A complete example`."""
    text = PAGE.read_text()
    section = text[text.index("## A complete example") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_pages_complete_example_fetches_secrets_echoes_and_meets_a_relay_error(
    tmp_path: Path,
) -> None:
    """Run as a fresh process: both secrets, the echoed StringValue, a -32603 quorum error."""
    script = tmp_path / "example.py"
    script.write_text(example())
    try:
        # A bound, not an expectation: about 3 s alone, far more on a machine shared by many.
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the example hung; it printed {exc.stdout!r} {exc.stderr!r}") from exc
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "secret API_KEY b's3cr3t-api-key-for-the-demo'",
        "secret DB_PASSWORD b'correct horse battery staple'",
        "echo type.googleapis.com/google.protobuf.StringValue b'\\n\\x02hi'",
    ]
    assert lines[3].startswith("relay error -32603 relay quorum unreachable: 0 signed responses")
