"""OpenTelemetry: set-up, context propagation, and the spans unigate makes by hand.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. When it is off nothing here is
installed (no gRPC interceptors, no ASGI middleware, no Redis hooks) and every call site guards
its span work with ``tracing_enabled()``, so the hot path does no tracing work at all.

What is never put in an attribute: prompts, completions, API keys, provider keys, headers.
Response bodies are only scanned for the top-level ``"model"`` name. Message content is
recorded only if an operator sets ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

One module per concern: ``setup`` (turning it on, the tracer, the current span),
``sampling`` (which traces are kept), ``propagation`` (context in and out of carriers),
``rpc`` (gRPC interceptors and the multiplexed streams' spans), ``asgi`` (the gateway's HTTP
server span), ``genai`` (attempt and upstream spans, GenAI attributes), ``events`` (usage
events over NATS and the ledger write). Callers import everything from here.
"""

from __future__ import annotations

from opentelemetry.context import Context as Context
from opentelemetry.trace import Span as Span

from unigate.telemetry.asgi import ASGIApp, ServerSpanMiddleware, set_request_id
from unigate.telemetry.events import ConsumeTrace, ledger_write, stamp_event, start_publish
from unigate.telemetry.genai import (
    end_genai_span,
    genai_attributes,
    genai_operation,
    genai_system,
    note_response,
    response_model,
    start_attempt,
    start_upstream,
)
from unigate.telemetry.propagation import extract, inject_headers, inject_into, inject_metadata
from unigate.telemetry.rpc import (
    MUX_METHODS,
    end_rpc_client,
    grpc_client_interceptors,
    grpc_server_interceptors,
    rpc_server_span,
    start_rpc_client,
    untraced_unless_recording,
)
from unigate.telemetry.setup import (
    CAPTURE_CONTENT_ENV,
    RETRY_BAGGAGE,
    attach,
    capture_content,
    current,
    detach,
    recording,
    setup_tracing,
    tracer,
    tracing_enabled,
)

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "MUX_METHODS",
    "RETRY_BAGGAGE",
    "ASGIApp",
    "ConsumeTrace",
    "Context",
    "ServerSpanMiddleware",
    "Span",
    "attach",
    "capture_content",
    "current",
    "detach",
    "end_genai_span",
    "end_rpc_client",
    "extract",
    "genai_attributes",
    "genai_operation",
    "genai_system",
    "grpc_client_interceptors",
    "grpc_server_interceptors",
    "inject_headers",
    "inject_into",
    "inject_metadata",
    "ledger_write",
    "note_response",
    "recording",
    "response_model",
    "rpc_server_span",
    "set_request_id",
    "setup_tracing",
    "stamp_event",
    "start_attempt",
    "start_publish",
    "start_rpc_client",
    "start_upstream",
    "tracer",
    "tracing_enabled",
    "untraced_unless_recording",
]
