"""Gateway metrics (PROTOCOL 5.5) through the OpenTelemetry API; the process wires the provider.

Upstream's three counters keep their names and attributes. We add a latency histogram and a
counter of dropped node responses (by reason), which operators need to see floods and faulty
nodes that upstream only logs.
"""

from __future__ import annotations

from opentelemetry import metrics

from workers.gateway.errors import ErrorCode


class GatewayMetrics:
    def __init__(self, don_id: str, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("relay.gateway", "0.1.0")
        self._don = {"don_id": don_id}
        self._internal_error = meter.create_counter(
            "confidential_relay_gateway_request_internal_error"
        )
        self._user_error = meter.create_counter("confidential_relay_gateway_request_user_error")
        self._success = meter.create_counter("confidential_relay_gateway_request_success")
        self._latency = meter.create_histogram(
            "confidential_relay_gateway_request_latency_ms", unit="ms"
        )
        self._dropped = meter.create_counter("confidential_relay_gateway_node_response_dropped")

    def replied(self, code: ErrorCode, elapsed_s: float | None) -> None:
        """One answer went to the enclave; upstream counts only these three codes."""
        if code is ErrorCode.NoError:
            self._success.add(1, self._don)
        elif code is ErrorCode.HandlerError:
            self._internal_error.add(1, {**self._don, "error": code.label})
        elif code is ErrorCode.UnsupportedDONIdError:
            self._user_error.add(1, self._don)
        if elapsed_s is not None:
            self._latency.record(int(elapsed_s * 1000), {**self._don, "error": code.label})

    def dropped(self, reason: str) -> None:
        self._dropped.add(1, {**self._don, "reason": reason})
