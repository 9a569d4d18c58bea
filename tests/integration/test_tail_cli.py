"""`relay tail` and `relay svc` as an operator runs them, against a real nats-server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from schemas import bus, capability, rpc, subjects
from workers.runtime.bus import Headers, Service, connect
from workers.runtime.natsserver import NatsServer, free_port

RELAY = (sys.executable, "-m", "workers.cli")
NO_AUTH_ENV = {**os.environ, "RELAY_NATS_NO_AUTH": "1"}
DON = "relay-don"
READY_TIMEOUT_S = 30.0  # the CLI imports every command module; the machine may be busy
EXIT_TIMEOUT_S = 15.0


class Tail:
    """A running `relay tail` subprocess whose readiness line has been read."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: str) -> None:
        self.proc = proc
        self.ready = ready

    async def finish(self) -> tuple[int, str, str]:
        """Wait (bounded) for the process to exit by itself: (exit code, stdout, stderr)."""
        out, err = await asyncio.wait_for(self.proc.communicate(), EXIT_TIMEOUT_S)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()

    async def next_line(self) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), EXIT_TIMEOUT_S)
        return line.decode()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kill a process still running, by its PID, and reap it (bounded)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT_S)


@contextlib.asynccontextmanager
async def tailing(
    url: str, *args: str, env: Mapping[str, str] = NO_AUTH_ENV
) -> AsyncIterator[Tail]:
    """Start `relay tail --nats URL ARGS`; yield once it printed that it is subscribed."""
    proc = await asyncio.create_subprocess_exec(
        *RELAY,
        "tail",
        "--nats",
        url,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        assert proc.stderr is not None
        ready = (await asyncio.wait_for(proc.stderr.readline(), READY_TIMEOUT_S)).decode()
        assert ready.startswith("tailing "), ready
        yield Tail(proc, ready)
    finally:
        await _stop(proc)


async def run_relay(*args: str, env: Mapping[str, str] = NO_AUTH_ENV) -> tuple[int, str, str]:
    """Run one `relay` command to completion (bounded): (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *RELAY,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT_S)
    finally:
        await _stop(proc)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def json_stream(text: str) -> list[Any]:
    """Every JSON document in `text`, pretty or one per line."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    index = 0
    text = text.strip()
    while index < len(text):
        doc, index = decoder.raw_decode(text, index)
        docs.append(doc)
        while index < len(text) and text[index].isspace():
            index += 1
    return docs


def verify_request(document: bytes) -> bytes:
    return bus.ENCODER.encode(
        bus.VerifyRequest(
            document=document,
            expected_user_data=b"\x01" * 32,
            trusted_values=[],
            measurements_revision=4,
        )
    )


# --- relay tail -------------------------------------------------------------------------------


async def test_tail_prints_each_relay_message_decoded_one_line_each_with_compact(
    nats_server: NatsServer, nc: Client
) -> None:
    """A verify request, a JSON-RPC request with headers and a node response, each decoded."""
    attestation = base64.b64encode(b"\xd2\x84" * 2000).decode()
    rpc_body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "req-7",
            "method": rpc.MethodSecretsGet,
            "params": {
                "secrets": [{"key": "api", "namespace": "main"}],
                "attestation": attestation,
            },
        }
    ).encode()
    async with tailing(nats_server.url, "--count", "3", "--compact") as tail:
        assert tail.ready.strip() == f"tailing relay.> on {nats_server.url}"
        await nc.publish("orders.created", b"not ours")  # outside relay.>: never shown
        await nc.publish(
            subjects.verify(DON, "node-0"), verify_request(b"\x00" * 3000), reply="_INBOX_x.1"
        )
        await nc.publish(subjects.rpc(DON, "node-0"), rpc_body, headers={"Trace": "abc"})
        await nc.publish(
            subjects.gateway_reply(DON, "gw-1", "node-0", 7),
            b'{"jsonrpc":"2.0","id":"req-7","result":{}}',
            headers={"Relay-Node": "node-0"},
        )
        await nc.flush()
        code, out, err = await tail.finish()

    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    verify, request, response = (json.loads(line) for line in lines)

    assert verify["parts"] == {"kind": "verify", "don": DON, "node": "node-0"}
    assert verify["reply"] == "_INBOX_x.1"
    assert verify["headers"] is None
    assert verify["encoding"] == "json"
    assert verify["body"]["type"] == "verify"
    assert verify["body"]["measurements_revision"] == 4
    assert verify["body"]["document"].endswith("[4000 chars, --full shows all]")
    assert verify["shortened"] == ["body.document"]
    assert verify["received"].endswith("Z")

    assert request["parts"] == {"kind": "rpc", "don": DON, "node": "node-0"}
    assert request["headers"] == {"Trace": "abc"}
    assert request["size"] == len(rpc_body)
    assert request["body"]["params"]["secrets"] == [{"key": "api", "namespace": "main"}]
    assert request["shortened"] == ["body.params.attestation"]

    assert response["parts"] == {
        "kind": "gateway-responses",
        "don": DON,
        "gateway": "gw-1",
        "node": "node-0",
        "ticket": 7,
    }
    assert response["headers"] == {"Relay-Node": "node-0"}
    assert response["body"] == {"jsonrpc": "2.0", "id": "req-7", "result": {}}
    assert err.strip().endswith("3 message(s)")


async def test_count_stops_after_n_messages_even_when_more_arrive(
    nats_server: NatsServer, nc: Client
) -> None:
    """With --count 2 and five messages published, exactly the first two are printed."""
    subject = subjects.registry(DON, "node-0", "measurements.get")
    async with tailing(nats_server.url, subject, "--count", "2", "--compact") as tail:
        for i in range(5):
            await nc.publish(subject, json.dumps({"seq": i}).encode())
        await nc.flush()
        code, out, _ = await tail.finish()
    assert code == 0
    assert [json.loads(line)["body"] for line in out.splitlines()] == [{"seq": 0}, {"seq": 1}]


async def test_a_wildcard_subject_shows_only_what_it_matches(
    nats_server: NatsServer, nc: Client
) -> None:
    """Tailing one node's prefix skips another node's traffic."""
    async with tailing(nats_server.url, "relay.v1.*.node-1.>", "--count", "1", "--compact") as tail:
        await nc.publish(subjects.verify(DON, "node-0"), b'{"from": 0}')
        await nc.publish(subjects.verify(DON, "node-1"), b'{"from": 1}')
        await nc.flush()
        code, out, _ = await tail.finish()
    assert code == 0
    (line,) = out.splitlines()
    assert json.loads(line)["parts"]["node"] == "node-1"


async def test_for_stops_after_the_given_seconds_with_nothing_received(
    nats_server: NatsServer,
) -> None:
    """--for 0.5 on a quiet subject exits 0 after about half a second, having printed nothing."""
    async with tailing(nats_server.url, "relay.v1.quiet.>", "--for", "0.5") as tail:
        started = time.monotonic()
        code, out, err = await tail.finish()
        elapsed = time.monotonic() - started
    assert code == 0
    assert out == ""
    assert err.strip() == "0 message(s)"
    assert 0.4 <= elapsed < 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_tail_cleanly_with_exit_0(
    nats_server: NatsServer, nc: Client, sig: signal.Signals
) -> None:
    """Without bounds tail runs until SIGTERM or Ctrl-C, then unsubscribes, closes and exits 0."""
    async with tailing(nats_server.url, "--compact") as tail:
        await nc.publish(subjects.gateway(DON), b'{"jsonrpc":"2.0"}')
        await nc.flush()
        line = await tail.next_line()
        assert json.loads(line)["parts"] == {"kind": "gateway", "don": DON}
        os.kill(tail.proc.pid, sig)
        code, out, err = await tail.finish()
    assert code == 0, err
    assert out == ""
    assert err.strip() == "1 message(s)"
    assert "Traceback" not in err


async def test_default_output_is_pretty_json_and_full_keeps_long_fields_whole(
    nats_server: NatsServer, nc: Client
) -> None:
    """Pretty documents parse as a JSON stream; --full prints a 4 KB payload entirely."""
    payload = b"\x0a\x2a" + b"\x99" * 4000
    call = capability.ENCODER.encode(
        capability.CapabilityCall(
            capability_id="echo@1.0.0",
            method="echo",
            payload=payload,
            metadata=capability.CallMetadata(workflow_id="wf-1"),
        )
    )
    subject = subjects.capability("echo@1.0.0", "echo")
    async with tailing(nats_server.url, "cap.>", "--count", "2", "--full") as tail:
        await nc.publish(subject, call)
        await nc.publish(subject, b"\xff\x00binary")
        await nc.flush()
        code, out, _ = await tail.finish()
    assert code == 0
    assert out.startswith('{\n  "subject": ')
    first, second = json_stream(out)
    assert first["parts"] == {"kind": "capability", "capability": "echo@1.0.0", "method": "echo"}
    assert base64.b64decode(first["body"]["payload"]) == payload
    assert first["body"]["metadata"]["workflow_id"] == "wf-1"
    assert first["shortened"] == []
    assert second["encoding"] == "base64"
    assert base64.b64decode(second["body"]) == b"\xff\x00binary"


async def test_an_invalid_subject_is_a_usage_error_with_exit_2() -> None:
    """A subject NATS would refuse is rejected before connecting, as argparse does."""
    code, out, err = await run_relay("tail", "relay..rpc", "--nats", "nats://127.0.0.1:1")
    assert code == 2
    assert out == ""
    assert "usage: relay tail" in err
    assert "invalid subject 'relay..rpc': a subject cannot have an empty token" in err


async def test_tail_without_a_server_exits_1_quickly_with_one_clear_line() -> None:
    """Nothing listening on the port: a bounded wait (--timeout 1), then one line and exit 1."""
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = await run_relay("tail", "--nats", url, "--timeout", "1")
    assert code == 1
    assert out == ""
    assert err.strip() == f"relay tail: cannot reach NATS at {url}: no server answered within 1s"
    assert time.monotonic() - started < 15


async def test_a_subject_the_ops_user_may_not_read_exits_1_with_the_reason(
    tmp_path: Path,
) -> None:
    """With users and permissions, subscribing outside the ops user's grant is one line, exit 1."""
    conf = tmp_path / "auth.conf"
    conf.write_text(
        "authorization {\n"
        "  users = [\n"
        "    { user: node-0-ops, password: node-0-ops-dev-password,\n"
        '      permissions: { subscribe: { allow: ["relay.>", "cap.>", "_INBOX_ops.>"] },\n'
        '                     publish: { allow: ["$SRV.>"] } } }\n'
        "  ]\n"
        "}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_NATS_")}
    async with NatsServer(config_file=conf, jetstream=False) as server:
        async with tailing(server.url, "--for", "0.2", env=env) as allowed:
            code, _, err = await allowed.finish()
        assert code == 0, err
        code, out, err = await run_relay("tail", "orders.>", "--nats", server.url, env=env)
    assert code == 1
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("relay tail: the ops user may not subscribe to orders.>: ")
    assert "permissions violation" in line.lower()


# --- relay svc --------------------------------------------------------------------------------


async def test_svc_lists_every_running_service_with_its_endpoint_and_counters(
    nats_server: NatsServer, nc: Client
) -> None:
    """Two replicas of a micro service are listed, by node, with subject, queue and requests."""

    async def echo(data: bytes, headers: Headers) -> bytes:
        return data

    replicas: list[tuple[Client, Service]] = []
    try:
        for node in ("node-0", "node-1"):
            svc_nc = await connect(nats_server.url, actor="svc-test")
            svc = Service(
                svc_nc,
                name="relay-svc-test",
                description="svc listing test",
                metadata={"don": DON, "node": node},
            )
            await svc.add_endpoint(
                name="verify",
                subject=subjects.verify(DON, node),
                queue=subjects.QUEUE_VERIFIER,
                handler=echo,
            )
            await svc.start()
            replicas.append((svc_nc, svc))
        for _ in range(2):
            await nc.request(subjects.verify(DON, "node-1"), b"ping", timeout=5)

        code, out, err = await run_relay("svc", "--nats", nats_server.url, "--json")
        assert code == 0, err
        listed = [s for s in json.loads(out) if s["name"] == "relay-svc-test"]
        assert [s["metadata"] for s in listed] == [
            {"don": DON, "node": "node-0"},
            {"don": DON, "node": "node-1"},
        ]
        assert {s["id"] for s in listed} == {svc._micro.id for _, svc in replicas if svc._micro}
        (endpoint,) = listed[1]["endpoints"]
        assert endpoint["name"] == "verify"
        assert endpoint["subject"] == subjects.verify(DON, "node-1")
        assert endpoint["queue_group"] == subjects.QUEUE_VERIFIER
        assert endpoint["num_requests"] == 2
        assert endpoint["num_errors"] == 0
        assert isinstance(endpoint["average_processing_time"], int)
        assert listed[0]["endpoints"][0]["num_requests"] == 0
        assert listed[0]["description"] == "svc listing test"

        code, table, err = await run_relay("svc", "--nats", nats_server.url)
        assert code == 0, err
        lines = table.splitlines()
        assert any(
            line.startswith("relay-svc-test 0.1.0  id ") and line.endswith(f"don={DON} node=node-1")
            for line in lines
        )
        row = next(line for line in lines if subjects.verify(DON, "node-1") in line)
        assert row.split()[:5] == [
            "verify",
            subjects.verify(DON, "node-1"),
            subjects.QUEUE_VERIFIER,
            "2",
            "0",
        ]
    finally:
        for _, svc in replicas:
            await svc.stop()


async def test_svc_without_a_server_exits_1_with_one_clear_line() -> None:
    """Nothing listening: exit 1 after the --timeout, one line, no traceback."""
    url = f"nats://127.0.0.1:{free_port()}"
    code, out, err = await run_relay("svc", "--nats", url, "--timeout", "1")
    assert code == 1
    assert out == ""
    assert err.strip() == f"relay svc: cannot reach NATS at {url}: no server answered within 1s"


def test_help_of_both_commands_exits_0() -> None:
    """`relay tail --help` and `relay svc --help` print their usage."""
    for command in ("tail", "svc"):
        done = subprocess.run(
            [*RELAY, command, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: relay {command}")


async def test_svc_refused_by_the_server_says_so_and_exits_1(tmp_path: Path) -> None:
    """A user that may not publish $SRV gets a permissions violation, not "nobody answered"."""
    conf = tmp_path / "auth.conf"
    conf.write_text(
        "authorization {\n"
        "  users = [\n"
        "    { user: node-0-ops, password: node-0-ops-dev-password,\n"
        '      permissions: { subscribe: { allow: ["_INBOX_ops.>"] },\n'
        '                     publish: { allow: ["relay.>"] } } }\n'
        "  ]\n"
        "}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_NATS_")}
    async with NatsServer(config_file=conf, jetstream=False) as server:
        code, out, err = await run_relay("svc", "--nats", server.url, "--wait", "0.3", env=env)
    assert (code, out) == (1, "")
    assert "refused the discovery requests" in err
    assert "permissions violation" in err.lower()
