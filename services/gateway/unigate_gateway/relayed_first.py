"""The relayed routes (``POST /v1/chat/completions`` and the others of ``app.RELAYED``) served
ahead of the framework, every other request by the FastAPI application.

Why: such a request went through eleven layers of ASGI middleware and routing (Starlette's
error and exception middleware, FastAPI's body-limit, telemetry and exit-stack middleware,
the router's matching, the route's request/response wrapper), each an ``async`` call, most
wrapping ``send`` too. py-spy at 32 connections put them at about a tenth of the gateway's CPU,
for requests whose handler needs none of them: it reads its own body, answers every error of
its own in the client's shape, and is found by an exact path. What those requests still get
here, in the same order as before: the body limit (``edge.BodyLimit``, outermost), the server
span when tracing is on, and the application's answer to an unexpected exception (a 500 in
OpenAI's shape, logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from unigate import telemetry
from unigate_gateway.edge import BodyLimit, BodyLimits

OnError = Callable[[Request, Exception], Awaitable[Response]]


class RelayedFirst:
    """ASGI: ``routes`` (exact path -> a POST route) served directly, the rest by ``app``."""

    def __init__(
        self, app: ASGIApp, routes: Mapping[str, Route], limits: BodyLimits, on_error: OnError
    ) -> None:
        self.app = app
        self._routes = dict(routes)
        self._on_error = on_error
        handler: Any = self._handle
        if telemetry.tracing_enabled():
            handler = telemetry.ServerSpanMiddleware(handler)
        self._served = BodyLimit(handler, limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self._routes:
            await self._served(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes[scope["path"]]
        scope["route"] = route  # the server span is named after it
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            response = await self._on_error(request, exc)
        await response(scope, receive, send)
