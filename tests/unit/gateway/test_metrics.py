"""Gateway metrics (PROTOCOL 5.5) as recorded through the handler, read from an in-memory reader."""

from __future__ import annotations

import json

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from workers.gateway.handler import (
    DonConfig,
    GatewayHandler,
    HandlerConfig,
    SendError,
    StaticMembership,
    UserRequest,
)
from workers.gateway.metrics import GatewayMetrics
from workers.gateway.ratelimit import RateLimit


class Sender:
    async def send(self, node: str, ticket: int, payload: bytes) -> None:
        if node == "down":
            raise SendError("no responders")


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    # Counters have a value, histograms a count.
                    value = float(getattr(point, "value", getattr(point, "count", 0)))
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return out


async def test_answers_and_drops_are_counted_with_the_spec_names() -> None:
    """Success, HandlerError and a dropped junk message each land on their instrument."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        metrics = GatewayMetrics("don-7", meter=provider.get_meter("test"))
        limits = RateLimit(rate=1000.0, burst=1000)
        handler = GatewayHandler(
            membership=StaticMembership(DonConfig(name="don-7", f=0, members=("n0", "down"))),
            sender=Sender(),
            config=HandlerConfig(global_rate=limits, per_node_rate=limits),
            metrics=metrics,
        )
        raw = b'{"jsonrpc":"2.0","id":"ok","method":"m","params":{}}'
        future = await handler.submit(UserRequest(id="ok", method="m", raw=raw))
        handler.on_node_response("n0", json.dumps({"id": "ok", "result": 1}).encode())
        assert future.done()
        await handler.handle(UserRequest(id="", method="m", raw=raw))
        handler.on_node_response("n0", b"junk")
        got = points(reader)
        assert got["confidential_relay_gateway_request_success"] == [({"don_id": "don-7"}, 1)]
        assert got["confidential_relay_gateway_request_internal_error"] == [
            ({"don_id": "don-7", "error": "HandlerError"}, 1)
        ]
        assert got["confidential_relay_gateway_node_response_dropped"] == [
            ({"don_id": "don-7", "reason": "malformed"}, 1)
        ]
        latency = dict(
            (attrs["error"], count)
            for attrs, count in got["confidential_relay_gateway_request_latency_ms"]
        )
        # Rejections before the request became active have no latency to record.
        assert latency == {"NoError": 1}
    finally:
        provider.shutdown()
