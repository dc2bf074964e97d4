"""gRPC client and server spans: interceptors for unary calls, and hand-made spans for the
multiplexed streams (``AuthorizeMany``, ``CallMany``, ``StreamMany``) whose calls are not one RPC
each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import AbstractContextManager
from typing import Any

import grpc
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from unigate.telemetry.propagation import extract, inject_headers
from unigate.telemetry.setup import (
    NO_SPAN,
    recording,
    tracer,
    tracing_enabled,
)


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
        if not recording():
            # Not sampled: no span, but the server must learn so (or it would start a trace
            # of its own), so the unsampled context still travels, at the cost of a header.
            return await continuation(_with_headers(client_call_details), request)
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        service, _, rpc = name.lstrip("/").partition("/")
        span = tracer().start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
        )
        with trace.use_span(span, end_on_exit=False):
            details = _with_headers(client_call_details)
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


def _with_headers(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """``details`` with the current trace context added to its metadata."""
    metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
    for key, value in inject_headers().items():
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, rpc = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}


def start_rpc_client(method: str, carrier: MutableMapping[str, str]) -> Span | None:
    """A client span for one multiplexed call (grpc_mux), its context put in ``carrier``;
    None when not tracing or when this request is not sampled: then the carrier stays empty,
    which tells the server there is no trace to join (``rpc_server_span``). Named like the
    unary twin's span, so traces look the same."""
    if not recording():
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
    tracing), child of the context the client sent in ``carrier`` (baggage included). An
    empty carrier is a call of a request not sampled (``start_rpc_client``): no span, and
    library instrumentation (the Redis calls below) is suppressed for the block, which
    would otherwise still make (and drop) a span per command: measured 20-28 us of CPU per
    Redis call."""
    if not tracing_enabled():
        return NO_SPAN
    if not carrier:
        return suppress_instrumentation()
    return _server_span(method, extract(carrier))


def untraced_unless_recording() -> AbstractContextManager[Any]:
    """Library instrumentation (Redis) suppressed for a block of a request not sampled, as
    ``rpc_server_span`` does on the servers' side: the gateway's spare binding (one EVALSHA
    per request) otherwise made and dropped a span each time, 4 % of the gateway's CPU at 32
    connections."""
    if not tracing_enabled() or trace.get_current_span().is_recording():
        return NO_SPAN
    return suppress_instrumentation()


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
    if not tracing_enabled():
        return None
    from opentelemetry.instrumentation.grpc._aio_client import UnaryUnaryAioClientInterceptor

    # The official unary interceptor ends its span in the call's done callback: exact.
    unary = UnaryUnaryAioClientInterceptor(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.grpc")
    )
    return [unary, _UnaryStreamClientInterceptor()]


def grpc_server_interceptors() -> list[grpc.aio.ServerInterceptor] | None:
    if not tracing_enabled():
        return None
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    # A multiplexed stream lives as long as its client; its calls get their own spans
    # (rpc_server_span), so the stream itself gets none.
    not_mux = filters.negate(filters.any_of(*(filters.method_name(m) for m in MUX_METHODS)))
    return [aio_server_interceptor(filter_=not_mux)]  # type: ignore[no-untyped-call]


# The stream-stream methods served through grpc_mux (MuxServer, MuxStreamServer).
MUX_METHODS = ("AuthorizeMany", "CallMany", "StreamMany")
