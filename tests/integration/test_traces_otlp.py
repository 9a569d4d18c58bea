"""A worker process with OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans over OTLP/HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from schemas import capability, subjects
from workers.node.process import REPO_ROOT
from workers.runtime.bus import connect, request
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Collector:
    """A loopback OTLP/HTTP receiver: each POST body to /v1/traces, decoded."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[str, bytes]] = queue.Queue()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                received.put((self.path, self.rfile.read(size)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


@pytest.fixture
def server() -> Iterator[NatsServer]:
    srv = NatsServer(config_file=REPO_ROOT / "nats.conf", jetstream=True)
    srv.start_sync()
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def echo_worker(server: NatsServer, collector: Collector) -> Iterator[subprocess.Popen[str]]:
    """`relay worker echo` with the collector configured, once it says ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "OTEL_"))}
    env.update(
        RELAY_NATS_URL=server.url, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, RELAY_LOG_LEVEL="INFO"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "echo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert "ready" in proc.stdout.readline()
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_worker_exports_its_span_continuing_the_callers_trace(
    server: NatsServer, collector: Collector, echo_worker: subprocess.Popen[str]
) -> None:
    """`relay worker echo` with a collector configured: after one traced call and SIGTERM, the
    collector holds the echo's server span, in the caller's trace, under the caller's span."""
    user, password = credentials_for("dispatch-capability")
    nc = await connect(server.url, actor="dispatch-capability", user=user, password=password)
    try:
        call = capability.CapabilityCall(
            capability_id="echo@1.0.0",
            method="echo",
            payload=b"",
            metadata=capability.CallMetadata(reference_id="otlp-1"),
        )
        await request(
            nc,
            subjects.capability("echo@1.0.0", "echo"),
            capability.ENCODER.encode(call),
            timeout_s=10,
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        )
    finally:
        await nc.close()
    os.kill(echo_worker.pid, signal.SIGTERM)  # the batch is flushed at exit
    for _ in range(300):  # bounded: 30 s
        if echo_worker.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert echo_worker.returncode == 0
    path, body = collector.requests.get(timeout=10)
    assert path == "/v1/traces"
    export = ExportTraceServiceRequest.FromString(body)
    resource = export.resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "relay-echo"
    spans = [s for rs in export.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["relay-ref-echo echo"]
    assert spans[0].trace_id.hex() == TRACE_ID
    assert spans[0].parent_span_id.hex() == PARENT_ID
