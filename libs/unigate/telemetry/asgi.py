"""The gateway's HTTP server span: ASGI middleware, and the request id on the span."""

from __future__ import annotations

from collections.abc import (
    Awaitable,
    Callable,
    Mapping,
    MutableMapping,
)
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from unigate.telemetry.setup import (
    tracer,
    tracing_enabled,
)

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
            # An unsampled request's span records nothing: finding its route (a walk over the
            # router's routes when Starlette left none in the scope) would be work for nothing.
            if span.is_recording():
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
    if tracing_enabled():
        trace.get_current_span().set_attribute("unigate.request_id", request_id)
