"""OpenTelemetry: set-up, context propagation, and the spans unigate makes by hand.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. When it is off nothing here is
installed (no gRPC interceptors, no ASGI middleware, no Redis hooks) and every call site guards
its span work with ``tracing_enabled()``, so the hot path does no tracing work at all.

What is never put in an attribute: prompts, completions, API keys, provider keys, headers.
Response bodies are only scanned for the top-level ``"model"`` name. Message content is
recorded only if an operator sets ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any

import grpc
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.context import Context as Context
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace import Span as Span

from unigate.channel_types import channel_type
from unigate.v1 import common_pb2

_configured = False
_capture_content = False
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Baggage key: the gateway's retry number travels to the relay with the trace context.
RETRY_BAGGAGE = "unigate.retry"


def setup_tracing(service_name: str) -> None:
    global _configured, _capture_content
    if _configured or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(root=_WorkRoots()),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Its statements are sanitized ("EVALSHA ? ? ?"), so no key or value leaves in a span.
    RedisInstrumentor().instrument(tracer_provider=provider)
    _capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
    _configured = True


class _WorkRoots(Sampler):
    """Traces start at a unit of work (a request, a published or consumed batch), never at a
    bare outgoing call: background loops (health reports, sweeper and lease checks in Redis)
    would otherwise each make a one-span trace every few seconds."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "UnigateWorkRoots"


def tracing_enabled() -> bool:
    return _configured


def capture_content() -> bool:
    return _capture_content


def tracer() -> trace.Tracer:
    return trace.get_tracer("unigate")


def attach(ctx: Context) -> Token[Context]:
    return context.attach(ctx)


def detach(token: Token[Context]) -> None:
    context.detach(token)


def current(span: Span | None) -> AbstractContextManager[Any]:
    """Make ``span`` the current span for a block (a shared no-op when it is None)."""
    if span is None:
        return _NO_SPAN
    return trace.use_span(span, end_on_exit=False, record_exception=False)


# --- propagation -------------------------------------------------------------------------


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


def inject_into(carrier: MutableMapping[str, str]) -> None:
    if _configured:
        propagate.inject(carrier)


def extract(carrier: Mapping[str, str] | Iterable[tuple[str, str | bytes]]) -> context.Context:
    if isinstance(carrier, Mapping):
        return propagate.extract(carrier)
    return propagate.extract({k: v if isinstance(v, str) else v.decode() for k, v in carrier})


# --- gRPC --------------------------------------------------------------------------------


class _UnaryStreamClientInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """A client span per server-streaming call, ended by the call's done callback.

    The official aio interceptor ends its span when the response iterator is exhausted; the
    gateway reads with ``read()`` and stops at the relay's ``StreamEnd`` without reading EOF,
    so that span would only end whenever the generator is garbage-collected.
    """

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        service, _, rpc = name.lstrip("/").partition("/")
        span = tracer().start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
        )
        metadata = grpc.aio.Metadata(*tuple(client_call_details.metadata or ()))
        with trace.use_span(span, end_on_exit=False):
            for key, value in inject_headers().items():
                metadata.add(key, value)
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        try:
            call = await continuation(details, request)
        except BaseException:
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            raise

        def done(finished: Any) -> None:
            # The status is only readable by awaiting; by now that completes at once.
            _pending.add(task := asyncio.ensure_future(_end_rpc_span(span, finished)))
            task.add_done_callback(_pending.discard)

        call.add_done_callback(done)
        return call


_pending: set[asyncio.Future[None]] = set()


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, rpc = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}


def start_rpc_client(method: str, carrier: MutableMapping[str, str]) -> Span | None:
    """A client span for one multiplexed call (grpc_mux), its context put in ``carrier``;
    None when not tracing. Named like the unary twin's span, so traces look the same."""
    if not _configured:
        return None
    span = tracer().start_span(method, kind=SpanKind.CLIENT, attributes=_rpc_attributes(method))
    with trace.use_span(span, end_on_exit=False):
        propagate.inject(carrier)
    return span


def end_rpc_client(span: Span | None, code: str | None) -> None:
    """``code``: the grpc status name the failure corresponds to; None for success."""
    if span is None:
        return
    if code is not None:
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def rpc_server_span(method: str, carrier: Mapping[str, str]) -> AbstractContextManager[Any]:
    """The server span of one multiplexed call, current for the block (a no-op when not
    tracing), child of the context the client sent in ``carrier`` (baggage included)."""
    if not _configured:
        return _NO_SPAN
    return _server_span(method, extract(carrier))


@contextlib.contextmanager
def _server_span(method: str, parent: Context) -> Iterator[Span]:
    token = context.attach(parent)
    try:
        with tracer().start_as_current_span(
            method, kind=SpanKind.SERVER, attributes=_rpc_attributes(method)
        ) as span:
            yield span
    finally:
        context.detach(token)


async def _end_rpc_span(span: Span, call: Any) -> None:
    try:
        code = await call.code()
    except Exception:
        code = None
    if isinstance(code, grpc.StatusCode):
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


def grpc_client_interceptors() -> list[grpc.aio.ClientInterceptor] | None:
    if not _configured:
        return None
    from opentelemetry.instrumentation.grpc._aio_client import UnaryUnaryAioClientInterceptor

    # The official unary interceptor ends its span in the call's done callback: exact.
    unary = UnaryUnaryAioClientInterceptor(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.grpc")
    )
    return [unary, _UnaryStreamClientInterceptor()]


def grpc_server_interceptors() -> list[grpc.aio.ServerInterceptor] | None:
    if not _configured:
        return None
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    # A multiplexed stream lives as long as its client; its calls get their own spans
    # (rpc_server_span), so the stream itself gets none.
    not_mux = filters.negate(filters.any_of(*(filters.method_name(m) for m in MUX_METHODS)))
    return [aio_server_interceptor(filter_=not_mux)]  # type: ignore[no-untyped-call]


# The stream-stream methods served through grpc_mux.MuxServer.
MUX_METHODS = ("AuthorizeMany", "CallMany")


# --- the gateway's server span -----------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ServerSpanMiddleware:
    """One SERVER span per HTTP request, covering a streamed body to its last byte.

    Installed only when tracing is on. No header, query string or body goes into it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        # A new root: this is the public edge, and a client's own `traceparent` would let it
        # pick our trace ids (or join our traces to its own).
        span = tracer().start_span(
            f"{method} {scope['path']}",
            context=context.Context(),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_status)
        finally:
            route = _route_of(scope)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def _route_of(scope: Mapping[str, Any]) -> str | None:
    """The matched route's template (a path can carry a model name)."""
    route = scope.get("route")
    if route is None:
        # FastAPI records only the endpoint for plain Starlette routes.
        endpoint, router = scope.get("endpoint"), scope.get("router")
        routes = getattr(router, "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is endpoint), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def set_request_id(request_id: str) -> None:
    if _configured:
        trace.get_current_span().set_attribute("unigate.request_id", request_id)


# --- GenAI attempt / upstream spans ------------------------------------------------------

_OPERATIONS = {
    "chat.completions": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def genai_system(type_id: int) -> str:
    """The provider's declared gen_ai.system (the GenAI conventions' value where they name
    one, else the first word of its name)."""
    ct = channel_type(type_id)
    return ct.gen_ai_system if ct else f"channel_type_{type_id}"


def genai_operation(endpoint: str) -> str:
    return _OPERATIONS.get(endpoint, endpoint)


def response_model(data: bytes) -> str:
    """The ``model`` a provider answered with, from a JSON body or the first SSE event.

    Only the first few KB are scanned: OpenAI-shaped answers name the model before the
    choices, and nothing else of the body is read.
    """
    m = _MODEL.search(data[:4096])
    return m.group(1).decode(errors="replace") if m else ""


def genai_attributes(
    *, endpoint: str, type_id: int, model: str, channel_id: int, retry: int | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.system": genai_system(type_id),
        "gen_ai.operation.name": genai_operation(endpoint),
        "gen_ai.request.model": model,
        "unigate.channel.id": channel_id,
    }
    if retry is not None:
        attrs["unigate.retry"] = retry
    return attrs


def start_attempt(
    *, endpoint: str, type_id: int, model: str, channel_id: int, retry: int, request_body: bytes
) -> tuple[Span, context.Context]:
    """The gateway's span for one try of one channel, and the context to call the relay in
    (it carries the retry number as baggage, so the relay's span can say it too)."""
    attrs = genai_attributes(
        endpoint=endpoint, type_id=type_id, model=model, channel_id=channel_id, retry=retry
    )
    if _capture_content:
        attrs["gen_ai.input.messages"] = request_body.decode(errors="replace")
    span = tracer().start_span(
        f"attempt {attrs['gen_ai.operation.name']} {model}", attributes=attrs
    )
    ctx = baggage.set_baggage(RETRY_BAGGAGE, str(retry), trace.set_span_in_context(span))
    return span, ctx


def start_upstream(
    *, endpoint: str, type_id: int, model: str, channel_id: int, request_body: bytes
) -> Span:
    """The relay's CLIENT span around the provider call."""
    retry = baggage.get_baggage(RETRY_BAGGAGE)
    attrs = genai_attributes(
        endpoint=endpoint,
        type_id=type_id,
        model=model,
        channel_id=channel_id,
        retry=int(retry) if isinstance(retry, str) and retry.isdigit() else None,
    )
    if _capture_content:
        attrs["gen_ai.input.messages"] = request_body.decode(errors="replace")
    return tracer().start_span(
        f"{attrs['gen_ai.operation.name']} {model}", kind=SpanKind.CLIENT, attributes=attrs
    )


def note_response(span: Span, data: bytes) -> None:
    """Record what the answer's first bytes say (the model; the content only if allowed)."""
    model = response_model(data)
    if model:
        span.set_attribute("gen_ai.response.model", model)


def end_genai_span(
    span: Span,
    *,
    usage: common_pb2.Usage | None,
    error_code: str = "",
    retryable: bool | None = None,
    outcome: str | None = None,
    response: bytes = b"",
) -> None:
    if response:
        note_response(span, response)
        if _capture_content:
            span.set_attribute("gen_ai.output.messages", response.decode(errors="replace"))
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.estimated:
            span.set_attribute("unigate.usage.estimated", True)
    span.set_attribute("unigate.outcome", outcome or ("error" if error_code else "success"))
    if error_code:
        span.set_attribute("error.type", error_code)
        span.set_status(Status(StatusCode.ERROR))
    if retryable is not None:
        span.set_attribute("unigate.retryable", retryable)
    span.end()


# --- usage events over NATS --------------------------------------------------------------


def stamp_event(carrier: MutableMapping[str, str]) -> None:
    """Put the current (request's) trace context into a usage event."""
    if _configured:
        propagate.inject(carrier)


def _event_link(carrier: Mapping[str, str]) -> Link | None:
    ctx = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return Link(ctx) if ctx.is_valid else None


def start_publish(
    subject: str, carriers: Iterable[Mapping[str, str]], count: int, headers: dict[str, str]
) -> Span:
    """The PRODUCER span of one batch message, linked to every request in it (one message
    carries many requests, so it can be the child of none of them); its own context goes
    into the message headers."""
    links = [link for link in map(_event_link, carriers) if link is not None]
    span = tracer().start_span(
        f"send {subject}",
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "send",
            "messaging.destination.name": subject,
            "messaging.batch.message_count": count,
        },
    )
    with trace.use_span(span, end_on_exit=False):
        propagate.inject(headers)
    return span


class ConsumeTrace:
    """Billing's spans for one fetched batch.

    A CONSUMER span for the batch (linked to the publishers' spans), the ledger write as its
    child, and one span per usage event as a child of that event's request, so each request's
    trace shows its billing.
    """

    def __init__(
        self,
        subject: str,
        headers: Iterable[Mapping[str, str] | None],
        events: Iterable[tuple[str, Mapping[str, str]]],
    ) -> None:
        headers = list(headers)
        links = [link for h in headers if h for link in [_event_link(h)] if link is not None]
        events = list(events)
        self.batch = tracer().start_span(
            f"process {subject}",
            context=context.Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": subject,
                "messaging.batch.message_count": len(headers),
                "unigate.events": len(events),
            },
        )
        batch_link = [Link(self.batch.get_span_context())]
        self.events: dict[str, Span] = {
            request_id: tracer().start_span(
                "apply usage event",
                context=propagate.extract(carrier),
                kind=SpanKind.CONSUMER,
                links=batch_link,
                attributes={"unigate.request_id": request_id, "messaging.system": "nats"},
            )
            for request_id, carrier in events
        }

    @contextlib.contextmanager
    def ledger_write(self, rows: int) -> Iterator[Span]:
        with tracer().start_as_current_span(
            "INSERT unigate ledger",
            context=trace.set_span_in_context(self.batch),
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": "apply usage batch",
                "db.operation.batch.size": rows,
            },
        ) as span:
            yield span

    def finish(self, applied: set[str], outcome: str | None = None) -> None:
        for request_id, span in self.events.items():
            span.set_attribute(
                "unigate.outcome", outcome or ("applied" if request_id in applied else "duplicate")
            )
            span.end()
        self.batch.set_attribute("unigate.events.applied", len(applied))
        self.batch.end()


def ledger_write(traced: ConsumeTrace | None, rows: int) -> AbstractContextManager[Any]:
    return _NO_SPAN if traced is None else traced.ledger_write(rows)
