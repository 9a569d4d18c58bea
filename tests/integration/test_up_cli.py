"""`relay up` as an operator runs it: embedded server with nats.conf, seeded, every actor, metrics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2, wrappers_pb2

from schemas import rpc, subjects
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.protocol import binding
from workers.reference import enclave_crypto
from workers.registry.devseed import seed_with_measurements
from workers.runtime.bus import connect, request
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import free_port

DON, NODE = "relay-don", "node-0"


class RunningUp:
    def __init__(
        self, proc: subprocess.Popen[str], lines: list[str], metrics_port: int, log: Path
    ) -> None:
        self.proc = proc
        self.lines = lines
        self.metrics_port = metrics_port
        self.log = log

    def log_entries(self) -> list[dict[str, Any]]:
        """Every line the node's processes wrote to stderr, each one JSON object."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    @property
    def nats_url(self) -> str:
        for line in self.lines:
            found = re.search(r"embedded nats-server (nats://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError(f"no server URL in {self.lines}")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text: str = resp.read().decode()
            return text


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="module")
def up(chain: TestChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    """`relay up` with a dev root and a seed trusting the test chain, until it says ready."""
    tmp = tmp_path_factory.mktemp("up")
    root, seed = tmp / "root.pem", tmp / "seed.json"
    root.write_bytes(chain.root_pem)
    seed.write_text(json.dumps(seed_with_measurements([chain.trusted_values_json()])))
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["RELAY_LOG_LEVEL"] = "DEBUG"  # the most a node ever logs: still no secret in it
    log = tmp / "stderr.jsonl"
    stderr = log.open("w")
    argv = ["up", "--seed", str(seed), "--dev-root", str(root)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *argv, "--metrics-port", str(metrics_port)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    stderr.close()  # the child has its own copy
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not any(line.startswith("Ctrl-C") for line in lines):
            assert time.monotonic() < deadline, lines
            line = proc.stdout.readline()
            assert line, f"relay up exited early ({proc.wait()}): {lines}"
            lines.append(line.rstrip("\n"))
        yield RunningUp(proc, lines, metrics_port, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def echo_request(chain: TestChain, request_id: str, *, method: str | None = None) -> bytes:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="hi"))
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
    params: dict[str, Any] = {
        "workflow_id": "wf-up",
        "owner": "0xowner",
        "execution_id": "ab" * 32,
        "reference_id": request_id,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload).decode(),
    }
    bound = binding.bind(rpc.MethodCapabilityExec, json.dumps(params).encode())
    params["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method or rpc.MethodCapabilityExec,
        "params": params,
    }
    return json.dumps(body).encode()


async def ask_as_gateway(url: str, raw: bytes) -> dict[str, Any]:
    user, password = credentials_for("gateway")
    nc = await connect(url, actor="gateway", user=user, password=password)
    try:
        answer: dict[str, Any] = json.loads(
            await request(nc, subjects.rpc(DON, NODE), raw, timeout_s=10)
        )
        return answer
    finally:
        await nc.close()


def test_up_says_where_it_listens_and_which_actors_run(up: RunningUp) -> None:
    """The ready report names the JSON-RPC subject, every actor with its pid, and the metrics URL."""
    text = "\n".join(up.lines)
    assert f"JSON-RPC  {subjects.rpc(DON, NODE)}" in text
    for actor in ("registry", "verifier", "dispatch-secrets", "dispatch-capability", "ingress"):
        assert re.search(rf"{actor} \(pid \d+\)", text), actor
    assert f"http://127.0.0.1:{up.metrics_port}/metrics" in text
    assert re.search(rf"verifier +{re.escape(subjects.verify(DON, NODE))}", text)
    assert re.search(r"vault +cap\.v1\.vault_401_2e0_2e0\.vault_2esecrets_2eget", text)


async def test_an_attested_request_through_up_reaches_the_echo_capability(
    up: RunningUp, chain: TestChain
) -> None:
    """The gateway's own NATS user gets a capability result from the node `relay up` started."""
    answer = await ask_as_gateway(up.nats_url, echo_request(chain, "up-1"))
    assert "error" not in answer, answer
    response = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(answer["result"]["payload"]))
    assert response.payload.Is(wrappers_pb2.StringValue.DESCRIPTOR)


async def test_the_ingress_exposes_the_protocol_metrics_for_prometheus(
    up: RunningUp, chain: TestChain
) -> None:
    """PROTOCOL 5.5's instruments, with their attributes, and per-stage latency, after real requests."""
    await ask_as_gateway(up.nats_url, echo_request(chain, "up-2"))
    unsupported = await ask_as_gateway(up.nats_url, echo_request(chain, "up-3", method="x.y"))
    assert unsupported["error"] == {"code": -32601, "message": "unsupported method: x.y"}
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the exporter reads the SDK on each scrape
        text = up.metrics()
        if 'method="unsupported"' in text:
            break
        await asyncio.sleep(0.1)
    success = re.search(
        r'enclave_relay_request_count_total\{[^}]*method="confidential.capability.execute"'
        r'[^}]*outcome="success"[^}]*\} (\d+)',
        text,
    )
    assert success, text
    assert int(success.group(1)) >= 1
    assert re.search(r'enclave_relay_request_count_total\{[^}]*error_code="-32601"', text)
    assert re.search(r'enclave_relay_request_internal_error_total\{[^}]*error_code="-32601"', text)
    assert re.search(r'enclave_relay_request_success_total\{gateway_id="gateway"', text)
    # The exporter appends the unit: enclave_relay_request_latency_ms becomes ..._ms_milliseconds.
    # A method the relay does not serve is labelled "unsupported", never by the client's text.
    assert re.search(r'enclave_relay_request_latency_ms\w*_bucket\{[^}]*method="unsupported"', text)
    assert 'method="x.y"' not in text
    for stage in ("registry", "verify", "dispatch"):
        assert re.search(rf'relay_stage_latency_seconds_count\{{[^}}]*stage="{stage}"', text), stage


async def test_the_full_error_is_logged_as_json_and_no_secret_is(
    up: RunningUp, chain: TestChain
) -> None:
    """The ingress logs a request's detail in JSON; a fetched secret and the passwords never."""
    enclave_key = enclave_crypto.public_hex(X25519PrivateKey.generate())
    params: dict[str, Any] = {
        "workflow_id": "wf-up",
        "owner": "0xab5801a7d398351b8be11c439e05c5b3259aec9b",
        "execution_id": "cd" * 32,
        "secrets": [{"key": "API_KEY"}],
        "enclave_public_key": enclave_key,
    }
    bound = binding.bind(rpc.MethodSecretsGet, json.dumps(params).encode())
    params["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
    body = {"jsonrpc": "2.0", "id": "up-4", "method": rpc.MethodSecretsGet, "params": params}
    answer = await ask_as_gateway(up.nats_url, json.dumps(body).encode())
    assert answer["result"]["secrets"][0]["id"]["key"] == "API_KEY", answer
    await ask_as_gateway(up.nats_url, echo_request(chain, "up-5", method="nope"))
    errors: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:  # the workers' stderr reaches the file
        await asyncio.sleep(0.05)
        entries = up.log_entries()
        errors = [
            e for e in entries if e["msg"] == "request error" and e.get("request_id") == "up-5"
        ]
    assert errors, up.log_entries()[-5:]
    assert errors[0]["actor"] == "ingress"
    assert (errors[0]["errorCode"], errors[0]["err"]) == (-32601, "unsupported method: nope")
    text = up.log.read_text()
    assert "s3cr3t-api-key-for-the-demo" not in text
    assert "dev-password" not in text


def test_the_actors_get_the_nats_url_by_environment_not_on_their_command_line(
    up: RunningUp,
) -> None:
    """A URL may carry a password and argv is public (`ps`): no actor's argv names the server."""
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", "\n".join(up.lines))][1:]  # not the server
    assert len(pids) >= 5
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"worker" in argv, argv
        assert b"--nats" not in argv
        assert not any(b"nats://" in arg for arg in argv), argv


def test_sigterm_drains_and_stops_every_process_it_started(up: RunningUp) -> None:
    """After SIGTERM, `relay up` exits 0 and none of its actors or its nats-server is left."""
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", "\n".join(up.lines))]
    assert len(pids) >= 6  # the server and the actors
    os.kill(up.proc.pid, signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert alive == []


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


@pytest.mark.parametrize("after", ["embedded nats-server", "registry seeded"])
def test_sigterm_during_start_stops_the_server_and_every_actor_already_started(
    after: str, tmp_path: Path
) -> None:
    """A signal before `ready` (server up, or actors starting) still cleans up by PID: before,
    it killed `relay up` alone and left nats-server and its actors running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "up", "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith(after) for line in lines):
            line = proc.stdout.readline()
            assert line, f"relay up exited early: {lines}"
            lines.append(line)
        server_pid = int(re.findall(r"\(pid (\d+)", "".join(lines))[0])
        children = _children(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        alive = [server_pid, *children]
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _alive(pid)]
            time.sleep(0.1)
        assert alive == []
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (the actors started so far)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
    return found
