"""Traces across actors: W3C trace context in NATS headers, a span per stage, off unless configured.

Each process decides once, at start (`configure_from_env`): with `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans go to that collector over OTLP/HTTP in
batches; otherwise tracing is off and every function here returns at its first line: no span,
no context, no header is made, so a node that does not trace pays one global lookup per call.

The context travels as the W3C `traceparent` (and `tracestate`) header of each NATS request
(`workers/runtime/bus.py` injects it into every request and opens the server span of every
endpoint from it); the gateway injects it into its fan-out publishes. A message without one
starts a new trace. Sampling is the SDK's (`OTEL_TRACES_SAMPLER`, parent-based by default, so a
trace is kept or dropped whole).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from workers.runtime.credentials import redact_url

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("relay.tracing")

SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
INTERNAL = SpanKind.INTERNAL

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def endpoint_from_env() -> str | None:
    """The collector traces go to, or None (tracing off). OTEL_SDK_DISABLED=true and
    OTEL_TRACES_EXPORTER=none turn it off whatever the endpoint."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def configure_from_env(service_name: str) -> bool:
    """Turn tracing on when a collector is configured (OTLP over HTTP, batched); True if on."""
    endpoint = endpoint_from_env()
    if endpoint is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, wins over ours (Resource.create reads the environment).
    resource = Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource)
    # The exporter reads the endpoint, headers, timeout and TLS settings from OTEL_* itself
    # (the general endpoint gets /v1/traces appended, the traces one is used as is).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    log.info("traces to %s over OTLP/HTTP", redact_url(endpoint))
    return True


def install(provider: TracerProvider) -> None:
    """Trace through `provider` (configure_from_env, or a test's in-memory exporter)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("relay", "0.1.0")


def uninstall() -> None:
    """Tracing off again (tests); spans still buffered are flushed first."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.force_flush()


def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around a block, the current one inside it. With `parent` (a message's headers,
    possibly without trace context) it continues that trace or starts a new one, ignoring
    whatever span is current; without, it is a child of the current span. Off: a no-op."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    context = _PROPAGATOR.extract(parent) if parent is not None else None
    return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def inject(headers: dict[str, str] | None) -> dict[str, str] | None:
    """`headers` plus the current span's trace context (a copy: the caller's dict is kept);
    unchanged when tracing is off or no span is current."""
    if _tracer is None:
        return headers
    carrier = dict(headers) if headers else {}
    _PROPAGATOR.inject(carrier)
    return carrier or headers


def set_attribute(key: str, value: str | int) -> None:
    """Label the current span (for example with the JSON-RPC request id); off: nothing."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value)


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits, as `relay tail` shows it), or None (off, or
    outside any span): the log lines of a request carry it, to find its trace."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextlib.contextmanager
def installed(provider: TracerProvider) -> Iterator[None]:
    """Trace through `provider` inside the block (tests and benchmarks)."""
    install(provider)
    try:
        yield
    finally:
        uninstall()
