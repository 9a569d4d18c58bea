"""The enclave client library imports on its own: no NATS, no event loop, no protobuf runtime."""

from __future__ import annotations

import subprocess
import sys

MODULES = ("client", "http", "bundle", "attest", "nsm", "answers", "shares", "workflow_sim")


def test_the_library_loads_without_nats_asyncio_aiohttp_or_protobuf() -> None:
    """A fresh interpreter importing every module but the NATS transport loads none of them."""
    code = (
        "import sys\n"
        + "".join(f"import workers.enclave.{m}\n" for m in MODULES)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('nats', 'asyncio', 'aiohttp', 'google')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
