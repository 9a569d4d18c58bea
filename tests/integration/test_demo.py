"""`relay demo` on a fresh process: every step behaves, everything stops, well under 30 s."""

from __future__ import annotations

import subprocess
import sys
import time


def test_the_demo_runs_every_step_and_exits_zero() -> None:
    """The whole mission end to end: secret decrypted, echo, two rejections, a node down."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "API_KEY = 's3cr3t-api-key-for-the-demo'" in out
    assert "another key cannot open them" in out
    assert out.count("echo answered 'hello from the enclave'") == 2
    assert "expected user data" in out  # the tampered request, from the nodes' logs
    assert "PCR0 mismatch" in out  # the unknown enclave image
    assert "node-0, node-1, node-2 answered" in out  # quorum with node-3 stopped
    assert "all steps behaved as expected" in out
    assert elapsed < 30


def test_the_current_protocol_demo_outvotes_a_liar_and_ignores_a_forgery() -> None:
    """`relay demo --protocol current`: signed answers, the enclave's pick, a wrong result from
    node-3 outvoted, its forged signature refused; exit 0 well under 30 s."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--protocol", "current"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "API_KEY = 's3cr3t-api-key-for-the-demo'" in out
    assert out.count("echo answered 'hello from the enclave'") == 3
    assert "node-3: valid, on another result" in out  # the wrong result, outvoted
    assert "claims node-0: INVALID, not from any allowed signer" in out  # the forgery
    assert "all steps behaved as expected" in out
    assert elapsed < 30


def test_the_cluster_demo_survives_a_killed_server_and_a_rogue_verifier_and_exits_zero() -> None:
    """`relay demo --cluster`: the kill, the restarted ingress, the rogue verifier, under 60 s."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--cluster"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "kill -9 nats-" in out
    assert "ingress served" in out
    assert ", 0 lost" in out
    assert "the untrusted image got 0 secret(s) of 20" in out
    assert "every node's verify subject refused" in out
    assert "and 0 of other nodes'" in out
    assert "all checks held" in out
    assert elapsed < 60
