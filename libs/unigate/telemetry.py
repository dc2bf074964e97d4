"""OpenTelemetry set-up and context propagation across gRPC metadata and NATS headers.

Tracing is exported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise the API's
no-op tracer is used, which costs next to nothing on the hot path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from opentelemetry import context, propagate, trace

_configured = False


def setup_tracing(service_name: str) -> None:
    global _configured
    if _configured or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def tracing_enabled() -> bool:
    return _configured


def inject_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata (empty when not tracing)."""
    if not _configured:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def inject_headers() -> dict[str, str]:
    if not _configured:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | Iterable[tuple[str, str | bytes]]) -> context.Context:
    if isinstance(carrier, Mapping):
        return propagate.extract(carrier)
    return propagate.extract({k: v if isinstance(v, str) else v.decode() for k, v in carrier})
