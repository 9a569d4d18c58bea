"""Traces across actors: one enclave request through the gateway and two real nodes is one trace."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from google.protobuf import any_pb2, wrappers_pb2
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas import rpc
from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import DonConfig, HandlerConfig, StaticMembership
from workers.gateway.http import HttpFront
from workers.node.process import REPO_ROOT, NodeProcess, RunningActor, seed_registry, start_actor
from workers.protocol import binding
from workers.registry.devseed import seed_with_measurements
from workers.runtime import tracing
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

DON = "relay-don"
NODES = ("node-0", "node-1")


@dataclass
class Don:
    url: str
    chain: TestChain
    nats_url: str
    seen_headers: list[dict[str, str] | None]


@pytest_asyncio.fixture
async def don(tmp_path: Path) -> AsyncIterator[Don]:
    """The repo's nats.conf, two nodes of real actors, the echo capability, a gateway with HTTP;
    an ops subscription records the headers of every relay and capability message."""
    server = NatsServer(config_file=REPO_ROOT / "nats.conf", jetstream=True)
    await server.start()
    chain = TestChain()
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(seed_with_measurements([chain.trusted_values_json()], members=NODES, f=0))
    )
    nodes: list[NodeProcess] = []
    extras: list[RunningActor] = []
    closers: list[Callable[[], Any]] = []
    try:
        # Each node operator's account holds its own registry bucket (docs/deployment.md).
        for node in NODES:
            await seed_registry(server.url, seed, party=node)
        for node in NODES:
            proc = NodeProcess(
                NodeSettings(don=DON, node=node, nats_url=server.url, dev_root_pem=root)
            )
            await proc.start()
            nodes.append(proc)
        extras.append(await start_actor("echo", NodeSettings(nats_url=server.url)))
        seen: list[dict[str, str] | None] = []

        async def record(msg: Msg) -> None:
            seen.append(msg.headers)

        # Each party's ops user sees its own account's traffic: together, every message.
        for party in (*NODES, "echo", "gateway"):
            user, password = credentials_for("ops", party)
            ops = await connect(server.url, actor="ops", user=user, password=password)
            closers.append(ops.close)
            for subject in ("relay.>", "cap.>"):
                await ops.subscribe(subject, cb=record)
            await ops.flush()
        user, password = credentials_for("gateway")
        gw_nc = await connect(server.url, actor="gateway", user=user, password=password)
        closers.append(gw_nc.close)
        gateway = GatewayActor(
            gw_nc,
            GatewaySettings(don=DON, handler=HandlerConfig(request_timeout_s=10)),
            StaticMembership(DonConfig(name=DON, f=0, members=NODES)),
        )
        await gateway.start()
        closers.append(gateway.stop)
        front = HttpFront(gateway.serve, port=0)
        await front.start()
        closers.append(front.close)
        yield Don(f"http://127.0.0.1:{front.port}/", chain, server.url, seen)
    finally:
        for close in reversed(closers):
            await close()
        for proc in nodes:
            await proc.stop()
        for actor in extras:
            await actor.service.stop()
        await server.stop()
        server.cleanup()


def echo_body(chain: TestChain, request_id: str) -> bytes:
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="traced"))
    payload = sdk_pb2.CapabilityRequest(method="echo", payload=inner).SerializeToString()
    params: dict[str, Any] = {
        "workflow_id": "wf-trace",
        "owner": "0xowner",
        "execution_id": "ef" * 32,
        "reference_id": request_id,
        "capability_id": "echo@1.0.0",
        "payload": base64.b64encode(payload).decode(),
    }
    bound = binding.bind(rpc.MethodCapabilityExec, json.dumps(params).encode())
    params["attestation"] = base64.b64encode(chain.document(user_data=bound.user_data)).decode()
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": rpc.MethodCapabilityExec,
        "params": params,
    }
    return json.dumps(body).encode()


async def post(url: str, body: bytes) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json(content_type=None)
        return answer


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context is not None}


def _parent(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return by_id.get(span.parent.span_id) if span.parent is not None else None


def _child(
    parent: ReadableSpan, name: str, spans: list[ReadableSpan], by_id: dict[int, ReadableSpan]
) -> ReadableSpan:
    found = [s for s in spans if s.name == name and _parent(s, by_id) is parent]
    assert len(found) == 1, (name, [(s.name, s.parent) for s in spans])
    return found[0]


async def test_one_request_through_gateway_and_nodes_is_one_trace_with_a_span_per_stage(
    don: Don,
) -> None:
    """Gateway -> each node's ingress -> registry, verify (-> verifier), dispatch (-> dispatcher ->
    DON call -> echo worker): every span in one trace, each linked to the stage that called it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.installed(provider):
        answer = await post(don.url, echo_body(don.chain, "trace-1"))
        assert "error" not in answer, answer
        # Quorum is one answer (F=0): the other node may still be finishing its spans.
        expected = 1 + len(NODES) * 8  # the HTTP span, and 8 per node (below)
        deadline = time.monotonic() + 15
        while len(exporter.get_finished_spans()) < expected:
            assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
            await asyncio.sleep(0.05)
    spans = list(exporter.get_finished_spans())
    assert len(spans) == expected, [s.name for s in spans]
    assert len({s.context.trace_id for s in spans if s.context is not None}) == 1
    by_id = _by_id(spans)
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["relay-gateway http"]
    root = roots[0]
    gateway_rpc = [s for s in spans if s.name == "relay-gateway rpc"]
    assert gateway_rpc == []  # the HTTP front served it, not the NATS front
    ingresses = [s for s in spans if s.name == "relay-ingress rpc"]
    assert sorted(str((s.attributes or {})["node"]) for s in ingresses) == list(NODES)
    echo_calls = []
    for ingress in ingresses:
        assert _parent(ingress, by_id) is root
        assert (ingress.attributes or {})["jsonrpc.request_id"] == "trace-1"
        _child(ingress, "stage registry", spans, by_id)
        verify = _child(ingress, "stage verify", spans, by_id)
        _child(verify, "relay-verifier verify", spans, by_id)
        stage = _child(ingress, "stage dispatch", spans, by_id)
        dispatcher = _child(stage, "relay-dispatch-capability capability-execute", spans, by_id)
        call = _child(dispatcher, "call echo@1.0.0", spans, by_id)
        assert (call.attributes or {})["relay.capability.method"] == "echo"
        echo_calls.append(_child(call, "relay-ref-echo echo", spans, by_id))
    assert len(echo_calls) == len(NODES)
    # The context travelled in the messages' headers: every request on the bus carried it.
    traced = [h for h in don.seen_headers if h and "traceparent" in h]
    trace_hex = format(root.context.trace_id, "032x")
    assert traced
    assert all(h["traceparent"].split("-")[1] == trace_hex for h in traced)


async def test_with_tracing_off_no_span_is_made_and_no_trace_header_travels(don: Don) -> None:
    """Off (the default): the same request makes no span and puts no traceparent on the bus."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # A provider exists in the process but is not installed: nothing may reach it.
    assert not tracing.enabled()
    answer = await post(don.url, echo_body(don.chain, "untraced-1"))
    assert "error" not in answer, answer
    for _ in range(100):  # bounded: 5 s for the other node's messages to pass the ops tap
        if len(don.seen_headers) >= 4 * len(NODES):
            break
        await asyncio.sleep(0.05)
    assert don.seen_headers
    assert not any(h and "traceparent" in h for h in don.seen_headers)
    assert exporter.get_finished_spans() == ()
