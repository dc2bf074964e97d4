"""The gateway's HTTP application: OpenAI-compatible routes plus /healthz and /readyz; /metrics
(and /healthz, /readyz again) on the ops port only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.websockets import WebSocket

from unigate import bus, errors, telemetry, tokenizer
from unigate import gemini_endpoints as gemini
from unigate.audio_duration import audio_seconds
from unigate.gateways import GatewayRegistry, new_gateway_id
from unigate.grpc_mux import AUTHORIZE, AUTHORIZE_WIRE, MuxClient
from unigate.grpcutil import client_channel
from unigate.heap import freeze_startup_heap
from unigate.logs import request_id_var
from unigate.namespace import Namespace
from unigate.ops import ops_routes, serve_ops
from unigate.redisconn import connect_redis
from unigate.request_ids import new_request_id
from unigate.tokens import estimate_body_tokens
from unigate.v1 import auth_pb2, auth_pb2_grpc
from unigate_gateway import metrics
from unigate_gateway.account_routes import account_routes
from unigate_gateway.anthropic_api import (
    COUNT_TOKENS,
    MESSAGES,
    messages_key,
    parse_count_tokens,
    parse_messages,
    request_id_headers,
)
from unigate_gateway.anthropic_batches import batch_routes
from unigate_gateway.channel_proxy import ChannelProxy
from unigate_gateway.client_ip import client_ip, parse_networks
from unigate_gateway.console import console_routes
from unigate_gateway.content_capture import ContentPublisher
from unigate_gateway.edge import BodyLimit, BodyLimits
from unigate_gateway.gemini_api import (
    gemini_key,
    json_array_stream,
    model_not_found,
    model_object,
    model_page,
    parse_gemini,
)
from unigate_gateway.management import Management
from unigate_gateway.not_implemented import not_implemented_routes
from unigate_gateway.proxy import Proxy, RelayClient, error_response
from unigate_gateway.publisher import UsagePublisher
from unigate_gateway.realtime import realtime_routes
from unigate_gateway.relayed_first import RelayedFirst
from unigate_gateway.requests import (
    ParsedCall,
    check_single_fields,
    parse_chat,
    parse_completions,
    parse_embeddings,
    parse_images,
    parse_input_tokens,
    parse_moderations,
    parse_rerank,
    parse_responses,
    parse_speech,
    upload_call,
)
from unigate_gateway.responses_api import (
    INPUT_TOKENS,
    RESPONSES,
    ResponsesTurn,
    responses_routes,
    responses_turn,
)
from unigate_gateway.settings import GatewaySettings
from unigate_gateway.slash_redirect import relative_slash_redirects
from unigate_gateway.spares import SparePools

log = logging.getLogger(__name__)


Parser = Callable[[Request, bytes], Awaitable[ParsedCall]]

# Longer than any key unigate issues ("sk-" + 48) with room for One API's "key-channel" form.
MAX_API_KEY_LENGTH = 256


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
        check_single_fields(name for name, _ in form.multi_items())
        upload = form.get("file")
        if upload is None:
            raise errors.InvalidRequest("Missing required parameter: 'file'.", param="file")
        # The reservation is priced on the audio's play time, read in a worker thread.
        seconds = (
            await asyncio.to_thread(audio_seconds, await upload.read())
            if isinstance(upload, UploadFile)
            else None
        )
        return upload_call(endpoint, body, content_type, form.get("model"), seconds)

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
    ("/v1/responses", RESPONSES, _json(parse_responses)),
    ("/v1/responses/input_tokens", INPUT_TOKENS, _json(parse_input_tokens)),
    ("/v1/messages", MESSAGES, _json(parse_messages)),
    ("/v1/messages/count_tokens", COUNT_TOKENS, _json(parse_count_tokens)),
]


async def _drop_spares(spares: SparePools) -> None:
    spares.drop_all()


def create_app(settings: GatewaySettings) -> RelayedFirst:
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
        await bus.ensure_usage_stream(js, ns, bus.StreamPlacement.from_settings(settings))
        publisher = UsagePublisher(
            js,
            ns.usage_subject,
            max_buffer=settings.usage_buffer,
            linger=settings.usage_linger_ms / 1000,
        )
        publisher.start()
        # Announced before the first request: a reservation never names a silent gateway.
        # The heartbeat, and binding and releasing spare reservations (one round trip each).
        redis = connect_redis(settings.redis_conn_string, max_connections=32)
        gateways, gateway_id = GatewayRegistry(redis, ns), new_gateway_id()
        spares = SparePools(redis, ns, gateway_id, max_wanted=settings.spares_wanted)
        # Any change of keys, users, balances, channels or options drops every spare at once.
        await bus.subscribe_config_changes(nc, ns, lambda _change: _drop_spares(spares))
        janitor = asyncio.create_task(spares.janitor())
        try:
            await gateways.beat(gateway_id, settings.heartbeat_ttl)
        except Exception as exc:  # serve anyway; a silent gateway's rows are corrected later
            log.error("gateway heartbeat failed: %s", exc)
        beating = asyncio.create_task(gateways.beat_forever(gateway_id, settings.heartbeat_ttl))
        # Billing a client that left mid-stream counts tokens: build the encodings now.
        warming = asyncio.create_task(asyncio.to_thread(tokenizer.warm_up))
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
        # Opened when first used; wait_for_ready: calls made while auth (re)starts wait for it
        # up to their timeout instead of failing at once.
        authorizer: MuxClient[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse] = MuxClient(
            lambda requests: auth.AuthorizeMany(requests, wait_for_ready=True),
            AUTHORIZE_WIRE,
            method=AUTHORIZE,
            lanes=settings.grpc_mux_lanes,
        )
        relays = {
            f: RelayClient.over(c, settings.grpc_mux_lanes) for f, c in relay_channels.items()
        }
        content = ContentPublisher(nc, ns.content_subject)
        state["proxy"] = Proxy(
            auth,
            authorizer,
            relays,
            publisher,
            retry_times=settings.retry_times,
            authorize_timeout=settings.authorize_timeout,
            relay_timeout=settings.relay_timeout,
            gateway_id=gateway_id,
            content=content,
            spares=spares,
        )
        state["channel_proxy"] = ChannelProxy(
            auth,
            relays,
            publisher,
            authorize_timeout=settings.authorize_timeout,
            relay_timeout=settings.relay_timeout,
        )
        state["nats"] = nc
        state["auth_channel"] = auth_channel
        ops = await serve_ops(settings.ops_host, settings.ops_port, ready)
        log.info("gateway listening on %s:%d", settings.host, settings.port)
        freeze_startup_heap()
        try:
            yield
        finally:
            ops.should_exit = True
            janitor.cancel()
            await asyncio.gather(janitor, return_exceptions=True)
            await spares.close()
            await warming
            await authorizer.close()
            for relay in relays.values():
                await relay.close()
            await publisher.close(settings.usage_flush_timeout)
            await content.close()
            await nc.drain()
            # The heartbeat stops only now, its reservations all published, and then simply
            # expires: whatever is still unsettled is swept within a minute.
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await redis.aclose()
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
        title="unigate",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry spans are off: ServerSpanMiddleware makes the request's
        # one server span. FastAPI's would be a second, separately sampled root per request
        # (measured: a third of the gateway's CPU per request with tracing on), and it
        # would follow a client's `traceparent`, letting clients force their requests to be
        # recorded.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Health for load balancers on the public port; /metrics only on the ops port.
    for route in ops_routes(ready):
        if isinstance(route, Route) and route.path != "/metrics":
            app.router.routes.append(route)
    if telemetry.tracing_enabled():
        app.add_middleware(telemetry.ServerSpanMiddleware)

    def proxy() -> Proxy:
        p = state["proxy"]
        assert isinstance(p, Proxy)
        return p

    def client_request_id_of(request: Request) -> str:
        """The id the client gave its request (``X-Request-Id``, else OpenAI's
        ``X-Client-Request-Id``), kept in the ledger beside ours; "" if none or unusable."""
        for header in ("x-request-id", "x-client-request-id"):
            rid = request.headers.get(header)
            if rid and len(rid) <= 128 and rid.isprintable():
                return rid
        return ""

    def ip_of(request: Request | WebSocket) -> str:
        peer = request.client.host if request.client else ""
        return client_ip(peer, request.headers.get("x-forwarded-for"), trusted)

    async def relayed(
        request: Request,
        endpoint: str,
        parse: Parser,
        key_of: Callable[[Request], str] | None = None,
    ) -> Response:
        started = time.perf_counter()
        client_request_id = client_request_id_of(request)
        # The ledger's key is always ours, so a client cannot collide with another's request;
        # it is the id the client is told (x-request-id), and the client's own is recorded.
        request_id = new_request_id()
        request_id_var.set(request_id)
        telemetry.set_request_id(request_id)
        try:
            # Bounded by the route's limit before it was read (edge.BodyLimit).
            body = await request.body()
            api_key = (
                key_of(request) if key_of is not None else messages_key(endpoint, request.headers)
            )
            if not api_key:
                raise errors.AuthenticationFailed(
                    "You didn't provide an API key. You need to provide your API key in an"
                    " Authorization header using Bearer auth"
                    " (i.e. Authorization: Bearer YOUR_KEY).",
                    code="missing_api_key",
                )
            if len(api_key) > MAX_API_KEY_LENGTH or not api_key.isprintable():
                # No key of ours looks like this: refused here, never sent on to auth.
                raise errors.AuthenticationFailed("Incorrect API key provided.")
            call = await parse(request, body)
            turn: ResponsesTurn | None = None
            if endpoint in (RESPONSES, INPUT_TOKENS):
                turn = await responses_turn(call, proxy().stored_response, api_key, ip_of(request))
                if turn.history:
                    # The replayed turns are prompt too: the reservation covers them.
                    call = replace(
                        call,
                        estimated_prompt_tokens=call.estimated_prompt_tokens
                        + estimate_body_tokens(len(turn.history)),
                    )
            response = await proxy().handle(
                api_key, call, ip_of(request), request_id, client_request_id, turn
            )
        except errors.ClientFacingError as err:
            response = error_response(err, request_id, endpoint)
            # Refused before any channel was tried: the proxy did not count it.
            metrics.request_done(
                endpoint, "", 0, response.status_code, time.perf_counter() - started
            )
        response.headers.update(request_id_headers(endpoint, request_id))
        if client_request_id:
            response.headers["X-Client-Request-Id"] = client_request_id
        return response

    async def channel_proxy(request: Request) -> Response:
        handler = state["channel_proxy"]
        assert isinstance(handler, ChannelProxy)
        return await handler.handle(request, ip_of(request))

    def relay_route(path: str, endpoint: str, parse: Parser) -> Route:
        async def handle(request: Request) -> Response:
            return await relayed(request, endpoint, parse)

        return Route(path, handle, methods=["POST"])

    async def gemini_method(request: Request) -> Response:
        """``POST /{v1beta,v1}/models/{model}:{method}``: the model and method from the path."""
        model, _, method = request.path_params["target"].rpartition(":")
        endpoint, streamed = gemini.METHODS.get(method, (gemini.GENERATE, False))

        async def parse(request: Request, body: bytes) -> ParsedCall:
            return parse_gemini(method, model, body)

        response = await relayed(request, endpoint, parse, gemini_key)
        if streamed and request.query_params.get("alt") != "sse":
            # Google's stream without alt=sse: one JSON array, its elements sent as they come.
            if isinstance(response, StreamingResponse):
                response.body_iterator = json_array_stream(response.body_iterator)
                response.headers["content-type"] = "application/json; charset=UTF-8"
            elif response.status_code >= 400:
                response.body = b"[" + response.body + b"]"
                response.headers["content-length"] = str(len(response.body))
        return response

    async def google_models(request: Request, model: str | None, version: str) -> Response:
        """Google's ``ListModels`` (``model`` None) or ``GetModel`` from the key's models."""
        # Ours, as on every answer of these routes (listing makes no ledger row).
        request_id = new_request_id()
        try:
            api_key = gemini_key(request)
            if not api_key:
                raise errors.AuthenticationFailed("No API key.", code="missing_api_key")
            names = await proxy().list_models(api_key, ip_of(request))
            if model is None:
                params = request.query_params
                body = model_page(names, params.get("pageSize"), params.get("pageToken"))
            elif model in names:
                body = model_object(model)
            else:
                raise model_not_found(model, version)
        except errors.ClientFacingError as err:
            return error_response(err, request_id, gemini.GENERATE)
        return Response(
            orjson.dumps(body), media_type="application/json", headers={"X-Request-Id": request_id}
        )

    async def v1beta_models(request: Request) -> Response:
        return await google_models(request, None, "v1beta")

    async def v1beta_model(request: Request) -> Response:
        return await google_models(request, request.path_params["model"], "v1beta")

    async def v1_google_models(request: Request, model: str | None) -> Response:
        return await google_models(request, model, "v1")

    # Plain Starlette routes: the relayed endpoints read the raw body themselves, so FastAPI's
    # per-request dependency and validation machinery would be pure overhead here. They are
    # served ahead of the application (RelayedFirst); listed in its router too, so that the
    # routes below keep their order and a path with a trailing slash is redirected to them.
    relayed_routes = [relay_route(path, endpoint, parse) for path, endpoint, parse in RELAYED]
    app.router.routes.extend(
        [
            *relayed_routes,
            # GET /v1/models answers in Google's shape to a request keyed only Google's way.
            *account_routes(proxy, ip_of, google=v1_google_models),
            *responses_routes(
                lambda *a: proxy().stored_response(*a),
                lambda *a: proxy().delete_stored_response(*a),
                ip_of,
                error_response,
                new_request_id,
            ),
            # Gemini-native, under /v1beta and /v1.
            Route("/v1beta/models/{target:path}", gemini_method, methods=["POST"]),
            Route("/v1/models/{target:path}", gemini_method, methods=["POST"]),
            Route("/v1beta/models", v1beta_models, methods=["GET"]),
            Route("/v1beta/models/{model:path}", v1beta_model, methods=["GET"]),
            # Anthropic's Message Batches (auth keeps and bills them).
            *batch_routes(lambda r: proxy().message_batch(r), ip_of, error_response),
            # One API's channel proxy, for administrators' keys.
            Route(
                "/v1/oneapi/proxy/{channel_id:int}/{target:path}",
                channel_proxy,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
            # After every served route: 501 for One API's routes unigate does not serve.
            *not_implemented_routes(),
            # The Realtime API: a WebSocket relayed through the relay's Realtime RPC.
            *realtime_routes(proxy, ip_of),
            # The web console: `/` and `/console/*` only (it routes inside the fragment).
            *console_routes(),
        ]
    )
    # One API's management REST API, with its own session, errors and OpenAPI document.
    management = Management(settings, ip_of)
    app.mount("/api", management.app)
    relative_slash_redirects(app.router)
    relative_slash_redirects(management.app.router)
    install_error_handlers(app)
    limits = BodyLimits(
        api=settings.max_api_body_bytes,
        upload=settings.max_upload_body_bytes,
        relay=settings.max_body_bytes,
    )
    # Outermost: a body over its route's limit is refused before anything reads it.
    app.add_middleware(BodyLimit, limits=limits)
    return RelayedFirst(app, {r.path: r for r in relayed_routes}, limits, unexpected)


async def unexpected(request: Request, exc: Exception) -> Response:
    """An exception no handler answered: a 500 in OpenAI's shape, logged."""
    if not isinstance(exc, ClientDisconnect):  # a client gone, or a body cut at its limit
        log.exception("unhandled error on %s", request.url.path)
    return error_response(
        errors.ClientFacingError("The server had an error while processing your request."),
        new_request_id(),
    )


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
        # Google's shape under /v1beta, whose clients read only that.
        shape = gemini.GENERATE if request.url.path.startswith("/v1beta/") else ""
        return error_response(err, new_request_id(), shape)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return error_response(errors.InvalidRequest(str(exc)), new_request_id())

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        StarletteHTTPException: http_error,
        RequestValidationError: validation_error,
        Exception: unexpected,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)
