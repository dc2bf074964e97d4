"""The management REST API (One API's ``/api/*`` paths and JSON), mounted by the gateway.

A thin face over gRPC: users, keys, channels, codes and options are auth's
``AdminService``; logs and usage are billing's ``BillingService``. This layer only handles
HTTP: the signed session cookie (Starlette's ``SessionMiddleware``, ``HttpOnly``,
``SameSite=Strict``, signed with ``SESSION_SECRET``), CSRF checks, request bodies, One API's
``{"success", "message", "data"}`` envelope, and its own OpenAPI document at
``/api/openapi.json``. Every answer is in the envelope, failures too (``success: false``),
under One API's status convention (``base.failure``): a refusal is HTTP 200, as One API's
clients expect; 401 (no credentials or an ended session), 413, 429 and 5xx keep their status,
and so do unknown routes (404) and methods (405).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response

from unigate.grpcutil import client_channel
from unigate.v1 import admin_pb2_grpc, billing_pb2_grpc
from unigate_gateway.management.account import account_router
from unigate_gateway.management.base import (
    ApiError,
    ClientIp,
    Stubs,
    failure,
    grpc_failure,
    route_failure,
)
from unigate_gateway.management.logs import logs_router
from unigate_gateway.management.oauth import oauth_router
from unigate_gateway.management.records import records_router
from unigate_gateway.management.signup import signup_router
from unigate_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SESSION_COOKIE = "session"


def session_secret(settings: GatewaySettings) -> str:
    """``SESSION_SECRET``; else one derived from ``SECRET_KEY`` (which every service of a
    deployment shares, so every gateway signs alike); else a random one, good for this
    process only."""
    if settings.session_secret:
        return settings.session_secret
    if settings.secret_key:
        digest = hmac.new(settings.secret_key.encode(), b"unigate session", hashlib.sha256)
        return digest.hexdigest()
    log.warning("neither SESSION_SECRET nor SECRET_KEY is set: sessions end with this process")
    return secrets.token_urlsafe(32)


class Management:
    """The ``/api`` sub-application and its gRPC channels (opened at first use, on the
    serving event loop; closed by the gateway's shutdown)."""

    def __init__(self, settings: GatewaySettings, client_ip: ClientIp) -> None:
        self._settings = settings
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: Stubs | None = None
        self.app = self._create_app(client_ip)

    def stubs(self) -> Stubs:
        if self._stubs is None:
            tls = self._settings.tls_files("gateway")
            auth = client_channel(self._settings.auth_addr, tls, "auth")
            billing = client_channel(self._settings.billing_addr, tls, "billing")
            self._channels = [auth, billing]
            self._stubs = Stubs(
                admin=admin_pb2_grpc.AdminServiceStub(auth),
                billing=billing_pb2_grpc.BillingServiceStub(billing),
                timeout=self._settings.management_timeout,
            )
        return self._stubs

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    def _create_app(self, client_ip: ClientIp) -> FastAPI:
        settings = self._settings
        app = FastAPI(
            title="unigate management API",
            version="1",
            # As the gateway's app: the request's one server span is ServerSpanMiddleware's.
            telemetry={"tracing": False, "metrics": False, "logs": False},
            description=(
                "One API's management paths and JSON. Authenticate with the session cookie"
                " from POST /api/user/login (cookie writes must send X-CSRF-Token, returned"
                " by login) or with `Authorization: Bearer <access token>` from"
                " GET /api/user/token."
            ),
            openapi_url="/openapi.json",
            docs_url=None,
            redoc_url=None,
        )
        app.add_middleware(
            SessionMiddleware,
            secret_key=session_secret(settings),
            session_cookie=SESSION_COOKIE,
            max_age=settings.session_ttl_seconds,
            path="/",
            same_site="strict",
            https_only=settings.session_cookie_secure,
        )
        app.include_router(account_router(self.stubs, client_ip))
        # Before records_router: its /user/{user_id} would take /user/aff.
        app.include_router(signup_router(self.stubs, client_ip))
        app.include_router(records_router(self.stubs))
        app.include_router(logs_router(self.stubs))
        app.include_router(oauth_router(self.stubs, client_ip))

        async def on_grpc(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, grpc.aio.AioRpcError)
            session_ended = (
                "sid" in request.session
                and not request.headers.get("authorization")
                and request.url.path.rstrip("/") != "/api/user/login"
            )
            response = grpc_failure(exc, session_ended=session_ended)
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED and session_ended:
                # The session ended in auth (logout elsewhere, password change): drop it here.
                request.session.clear()
            return response

        async def on_api(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, ApiError)
            return failure(exc.status, str(exc))

        async def on_http(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, StarletteHTTPException)
            messages = {
                404: f"unknown route: {request.method} {request.url.path}",
                405: f"method {request.method} is not allowed on {request.url.path}",
            }
            return route_failure(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

        async def on_validation(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestValidationError)
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in exc.errors()
            )
            return failure(400, problems or "invalid request")

        async def on_unexpected(request: Request, exc: Exception) -> Response:
            log.exception("management route %s failed", request.url.path)
            return failure(500, "internal error")

        app.add_exception_handler(grpc.aio.AioRpcError, on_grpc)
        app.add_exception_handler(ApiError, on_api)
        app.add_exception_handler(StarletteHTTPException, on_http)
        app.add_exception_handler(RequestValidationError, on_validation)
        app.add_exception_handler(Exception, on_unexpected)
        return app
