"""The gateway's HTTP application: OpenAI-compatible routes plus /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from unigate import bus, errors, telemetry, tokenizer
from unigate.grpc_mux import AUTHORIZE, MuxClient
from unigate.grpcutil import client_channel
from unigate.logs import request_id_var
from unigate.namespace import Namespace
from unigate.ops import ops_routes
from unigate.v1 import auth_pb2, auth_pb2_grpc
from unigate_gateway import metrics
from unigate_gateway.account_routes import account_routes
from unigate_gateway.anthropic_api import (
    COUNT_TOKENS,
    MESSAGES,
    messages_key,
    parse_count_tokens,
    parse_messages,
)
from unigate_gateway.client_ip import client_ip, parse_networks
from unigate_gateway.console import console_routes
from unigate_gateway.management import Management
from unigate_gateway.proxy import Proxy, RelayClient, error_response, new_request_id
from unigate_gateway.publisher import UsagePublisher
from unigate_gateway.requests import (
    ParsedCall,
    parse_chat,
    parse_completions,
    parse_embeddings,
    parse_images,
    parse_moderations,
    parse_rerank,
    parse_responses,
    parse_speech,
    upload_call,
)
from unigate_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


Parser = Callable[[Request, bytes], Awaitable[ParsedCall]]


def _json(parse: Callable[[bytes], ParsedCall]) -> Parser:
    async def parse_json(request: Request, body: bytes) -> ParsedCall:
        return parse(body)

    return parse_json


def _upload(endpoint: str) -> Parser:
    async def parse_upload(request: Request, body: bytes) -> ParsedCall:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise errors.InvalidRequest(
                "This endpoint takes multipart/form-data with a `file` and a `model`."
            )
        try:
            form = await request.form()
        except Exception as exc:  # python-multipart's errors have no common base
            raise errors.InvalidRequest(f"Could not parse the multipart body: {exc}") from None
        if form.get("file") is None:
            raise errors.InvalidRequest("Missing required parameter: 'file'.", param="file")
        return upload_call(endpoint, body, content_type, form.get("model"))

    return parse_upload


# The relayed endpoints: path, endpoint name (as relays know it), request checks.
RELAYED: list[tuple[str, str, Parser]] = [
    ("/v1/chat/completions", "chat.completions", _json(parse_chat)),
    ("/v1/completions", "completions", _json(parse_completions)),
    ("/v1/embeddings", "embeddings", _json(parse_embeddings)),
    ("/v1/moderations", "moderations", _json(parse_moderations)),
    ("/v1/images/generations", "images.generations", _json(parse_images)),
    ("/v1/audio/speech", "audio.speech", _json(parse_speech)),
    ("/v1/audio/transcriptions", "audio.transcriptions", _upload("audio.transcriptions")),
    ("/v1/audio/translations", "audio.translations", _upload("audio.translations")),
    ("/v1/rerank", "rerank", _json(parse_rerank)),
    ("/v1/responses", "responses", _json(parse_responses)),
    ("/v1/messages", MESSAGES, _json(parse_messages)),
    ("/v1/messages/count_tokens", COUNT_TOKENS, _json(parse_count_tokens)),
]


def create_app(settings: GatewaySettings) -> FastAPI:
    ns = Namespace(settings.namespace)
    trusted = parse_networks(settings.trusted_proxies)
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tls = settings.tls_files("gateway")
        auth_channel = client_channel(settings.auth_addr, tls, "auth")
        relay_channels = {
            f: client_channel(a, tls, "relay") for f, a in settings.relay_map().items()
        }
        nc = await bus.connect(settings.nats_url, "unigate-gateway")
        js = nc.jetstream()
        await bus.ensure_usage_stream(js, ns, replicas=settings.usage_stream_replicas)
        publisher = UsagePublisher(
            js,
            ns.usage_subject,
            max_buffer=settings.usage_buffer,
            linger=settings.usage_linger_ms / 1000,
        )
        publisher.start()
        # Billing a client that left mid-stream counts tokens: build the encodings now.
        warming = asyncio.create_task(asyncio.to_thread(tokenizer.warm_up))
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
        # Opened when first used; wait_for_ready: calls made while auth (re)starts wait for it
        # up to their timeout instead of failing at once.
        authorizer: MuxClient[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse] = MuxClient(
            lambda requests: auth.AuthorizeMany(requests, wait_for_ready=True),
            method=AUTHORIZE,
            lanes=settings.grpc_mux_lanes,
        )
        relays = {
            f: RelayClient.over(c, settings.grpc_mux_lanes) for f, c in relay_channels.items()
        }
        state["proxy"] = Proxy(
            auth,
            authorizer,
            relays,
            publisher,
            retry_times=settings.retry_times,
            authorize_timeout=settings.authorize_timeout,
            relay_timeout=settings.relay_timeout,
        )
        state["nats"] = nc
        state["auth_channel"] = auth_channel
        log.info("gateway listening on %s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            await warming
            await authorizer.close()
            for relay in relays.values():
                await relay.many.close()
            await publisher.close(settings.usage_flush_timeout)
            await nc.drain()
            await management.close()
            await auth_channel.close()
            for c in relay_channels.values():
                await c.close()

    async def ready() -> dict[str, bool]:
        nc = state.get("nats")
        channel = state.get("auth_channel")
        auth_ok = isinstance(channel, grpc.aio.Channel) and channel.get_state(
            try_to_connect=True
        ) in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.IDLE)
        return {"nats": bool(nc and nc.is_connected), "auth": auth_ok}  # type: ignore[attr-defined]

    app = FastAPI(
        title="unigate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    for route in ops_routes(ready):
        app.router.routes.append(route)
    if telemetry.tracing_enabled():
        app.add_middleware(telemetry.ServerSpanMiddleware)

    def proxy() -> Proxy:
        p = state["proxy"]
        assert isinstance(p, Proxy)
        return p

    def request_id_of(request: Request) -> str:
        rid = request.headers.get("x-request-id")
        if rid and len(rid) <= 128 and rid.isprintable():
            return rid
        return new_request_id()

    def ip_of(request: Request) -> str:
        peer = request.client.host if request.client else ""
        return client_ip(peer, request.headers.get("x-forwarded-for"), trusted)

    async def relayed(request: Request, endpoint: str, parse: Parser) -> Response:
        started = time.perf_counter()
        client_request_id = request_id_of(request)
        # The ledger's key is always ours, so a client cannot collide with another's request.
        request_id = new_request_id()
        request_id_var.set(request_id)
        telemetry.set_request_id(request_id)
        try:
            body = await request.body()
            if len(body) > settings.max_body_bytes:
                raise errors.ClientFacingError(
                    "Request body too large.",
                    status=413,
                    type="invalid_request_error",
                    code="request_too_large",
                )
            api_key = messages_key(endpoint, request.headers)
            if not api_key:
                raise errors.AuthenticationFailed(
                    "You didn't provide an API key. You need to provide your API key in an"
                    " Authorization header using Bearer auth"
                    " (i.e. Authorization: Bearer YOUR_KEY).",
                    code="missing_api_key",
                )
            call = await parse(request, body)
            response = await proxy().handle(api_key, call, ip_of(request), request_id)
        except errors.ClientFacingError as err:
            response = error_response(err, request_id, endpoint)
            # Refused before any channel was tried: the proxy did not count it.
            metrics.request_done(
                endpoint, "", 0, response.status_code, time.perf_counter() - started
            )
        response.headers["X-Request-Id"] = client_request_id
        if client_request_id != request_id:
            response.headers["X-Unigate-Request-Id"] = request_id
        return response

    def relay_route(path: str, endpoint: str, parse: Parser) -> Route:
        async def handle(request: Request) -> Response:
            return await relayed(request, endpoint, parse)

        return Route(path, handle, methods=["POST"])

    # Plain Starlette routes: the relayed endpoints read the raw body themselves, so FastAPI's
    # per-request dependency and validation machinery would be pure overhead here.
    app.router.routes.extend(
        [
            *(relay_route(path, endpoint, parse) for path, endpoint, parse in RELAYED),
            *account_routes(proxy, ip_of),
            # The web console: `/` and `/console/*` only (it routes inside the fragment).
            *console_routes(),
        ]
    )
    # One API's management REST API, with its own session, errors and OpenAPI document.
    management = Management(settings, ip_of)
    app.mount("/api", management.app)
    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves in OpenAI's shape, including the framework's own 404/405."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        messages = {
            404: f"Unknown request URL: {request.method} {request.url.path}.",
            405: f"Method {request.method} is not allowed for {request.url.path}.",
        }
        err = errors.ClientFacingError(
            messages.get(exc.status_code, str(exc.detail)),
            status=exc.status_code,
            type="invalid_request_error",
            code="unknown_url" if exc.status_code == 404 else None,
        )
        return error_response(err, new_request_id())

    async def validation_error(request: Request, exc: Exception) -> Response:
        return error_response(errors.InvalidRequest(str(exc)), new_request_id())

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(
            errors.ClientFacingError("The server had an error while processing your request."),
            new_request_id(),
        )

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        StarletteHTTPException: http_error,
        RequestValidationError: validation_error,
        Exception: unexpected,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)
