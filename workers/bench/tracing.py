"""`relay bench tracing`: what tracing costs a request hop, off (the default) and on, in one run.

Two measurements, each in interleaved rounds with the median taken:
- `helpers`: the tracing calls one hop makes (the requester's inject, the endpoint's check and,
  on, its server span), in a tight loop: nanoseconds per hop, off and on (on: an SDK tracer with
  a batch processor, as a production process batches to its collector, into an exporter that
  drops the batches), beside the same loop making two plain Python calls (the floor of any call);
- `round_trip`: a real request/reply through `workers.runtime.bus` (a `Service` endpoint on an
  embedded nats-server over loopback), sequential: microseconds per request, off and on.

Off must cost nothing measurable: its helpers return at their first line and make no object.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from workers.runtime import tracing
from workers.runtime.bus import Headers, Service, connect, request
from workers.runtime.loop import run_loop
from workers.runtime.natsserver import NatsServer

SUBJECT = "bench.tracing.echo"


@dataclass(frozen=True, kw_only=True)
class TracingSettings:
    rounds: int = 5
    calls: int = 5_000
    requests: int = 1_000


class _Discard(SpanExporter):
    """An exporter that drops the batches: the network to a collector is not what is measured."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard()))
    return provider


def _helpers_ns(calls: int) -> float:
    """Nanoseconds per hop of the tracing calls a hop makes, with whatever is installed now:
    the requester's inject, the endpoint's check (and, when on, its server span)."""
    headers = {"Relay-Node": "node-0"}
    started = time.perf_counter_ns()
    for _ in range(calls):
        sent = tracing.inject(None)
        if tracing.enabled():
            with tracing.span("bench", parent=sent or headers, kind=tracing.SERVER):
                pass
    return (time.perf_counter_ns() - started) / calls


def _same_as(value: object) -> object:
    return value


def _never() -> bool:
    return False


def _baseline_ns(calls: int) -> float:
    """The same loop with two plain Python calls in place of the helpers: the floor of any call."""
    started = time.perf_counter_ns()
    for _ in range(calls):
        _same_as(None)
        if _never():
            pass
    return (time.perf_counter_ns() - started) / calls


async def _round_trip_us(url: str, requests: int) -> float:
    server_nc = await connect(url, actor="bench-server")
    client = await connect(url, actor="bench-client")
    svc = Service(server_nc, name="bench-echo", description="tracing bench echo")

    async def echo(data: bytes, headers: Headers) -> bytes:
        return data

    await svc.add_endpoint(name="echo", subject=SUBJECT, queue="bench", handler=echo)
    await svc.start()
    try:
        for _ in range(50):  # warm-up
            await request(client, SUBJECT, b"x", timeout_s=5)
        started = time.perf_counter_ns()
        for _ in range(requests):
            await request(client, SUBJECT, b"x" * 64, timeout_s=5)
        return (time.perf_counter_ns() - started) / requests / 1000
    finally:
        await client.close()
        await svc.stop()


def run(settings: TracingSettings) -> dict[str, Any]:
    helpers: dict[str, list[float]] = {"off": [], "on": [], "baseline": []}
    trips: dict[str, list[float]] = {"off": [], "on": []}
    server = NatsServer(jetstream=False)
    server.start_sync()
    provider = _provider()
    try:
        for _ in range(settings.rounds):
            helpers["baseline"].append(_baseline_ns(settings.calls))
            for mode in ("off", "on"):
                if mode == "on":
                    tracing.install(provider)
                try:
                    helpers[mode].append(_helpers_ns(settings.calls))
                    trips[mode].append(run_loop(_round_trip_us(server.url, settings.requests)))
                finally:
                    tracing.uninstall()
    finally:
        provider.shutdown()
        server.cleanup()
    off_ns, on_ns = statistics.median(helpers["off"]), statistics.median(helpers["on"])
    baseline_ns = statistics.median(helpers["baseline"])
    off_us, on_us = statistics.median(trips["off"]), statistics.median(trips["on"])
    return {
        "rounds": settings.rounds,
        "helpers_off_ns": round(off_ns, 1),
        "baseline_two_calls_ns": round(baseline_ns, 1),
        "helpers_on_ns": round(on_ns, 1),
        "round_trip_off_us": round(off_us, 1),
        "round_trip_on_us": round(on_us, 1),
        "off_share_of_round_trip": round(off_ns / 1000 / off_us, 5),
        "on_cost_us": round(on_us - off_us, 1),
    }


def render(report: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"tracing cost per hop, median of {report['rounds']} interleaved rounds:",
            f"  helpers off  {report['helpers_off_ns']:>10.1f} ns"
            f"   ({report['off_share_of_round_trip'] * 100:.3f} % of a loopback round trip)",
            f"  two plain Python calls {report['baseline_two_calls_ns']:>6.1f} ns (the floor)",
            f"  helpers on   {report['helpers_on_ns']:>10.1f} ns",
            f"  round trip off {report['round_trip_off_us']:>8.1f} us",
            f"  round trip on  {report['round_trip_on_us']:>8.1f} us"
            f"   (+{report['on_cost_us']:.1f} us)",
        ]
    )
