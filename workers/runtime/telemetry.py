"""Relay metrics (PROTOCOL 5.5) behind a small protocol, with an OpenTelemetry implementation.

The core (ingress) only sees `RelayMetrics`; whether numbers go to OpenTelemetry, Prometheus or
nowhere is decided by the process that starts it. Instrument names, types and attributes are
upstream's, so dashboards built for the Go relay read ours too; `relay_stage_latency_seconds`
(per stage: registry, verify, dispatch) is our addition. Attribute dicts are built once per
distinct value and reused, because attribute handling dominates the cost of a metric call.
"""

from __future__ import annotations

import logging
from typing import Protocol

from opentelemetry import metrics

log = logging.getLogger("relay.telemetry")


class RelayMetrics(Protocol):
    def record_request(
        self,
        *,
        method: str,
        outcome: str,
        error_code: int | None,
        latency_ms: float,
        gateway_id: str,
    ) -> None: ...

    def internal_error(self, gateway_id: str, error_code: int) -> None: ...

    def success(self, gateway_id: str) -> None: ...

    def stage_latency(self, stage: str, seconds: float) -> None: ...


class OtelRelayMetrics:
    """The relay node's instruments on an OpenTelemetry meter."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("relay.node", "0.1.0")
        self._count = meter.create_counter("enclave_relay_request_count")
        self._latency = meter.create_histogram("enclave_relay_request_latency_ms", unit="ms")
        self._internal_error = meter.create_counter("enclave_relay_request_internal_error")
        self._success = meter.create_counter("enclave_relay_request_success")
        self._stage = meter.create_histogram("relay_stage_latency", unit="s")
        self._attrs: dict[tuple[object, ...], dict[str, str | int]] = {}

    def _cached(self, key: tuple[object, ...], build: dict[str, str | int]) -> dict[str, str | int]:
        found = self._attrs.get(key)
        if found is None:
            if len(self._attrs) > 10_000:  # method names come from clients: bound the cache
                self._attrs.clear()
            found = self._attrs[key] = build
        return found

    def record_request(
        self,
        *,
        method: str,
        outcome: str,
        error_code: int | None,
        latency_ms: float,
        gateway_id: str,
    ) -> None:
        key = ("request", gateway_id, method, outcome, error_code)
        attrs: dict[str, str | int] = {
            "gateway_id": gateway_id,
            "method": method,
            "outcome": outcome,
        }
        if error_code is not None:
            attrs["error_code"] = error_code
        attrs = self._cached(key, attrs)
        self._count.add(1, attrs)
        self._latency.record(int(latency_ms), attrs)

    def internal_error(self, gateway_id: str, error_code: int) -> None:
        attrs = self._cached(
            ("internal", gateway_id, error_code),
            {"gateway_id": gateway_id, "error_code": error_code},
        )
        self._internal_error.add(1, attrs)

    def success(self, gateway_id: str) -> None:
        self._success.add(1, self._cached(("success", gateway_id), {"gateway_id": gateway_id}))

    def stage_latency(self, stage: str, seconds: float) -> None:
        self._stage.record(seconds, self._cached(("stage", stage), {"stage": stage}))


def install_prometheus(port: int, *, service_name: str, host: str = "127.0.0.1") -> None:
    """One MeterProvider for this process, exposed for Prometheus on host:port/metrics."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    reader = PrometheusMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": service_name}), metric_readers=[reader]
    )
    metrics.set_meter_provider(provider)
    start_http_server(port, addr=host)
    log.info("metrics for Prometheus on http://%s:%d/metrics", host, port)
