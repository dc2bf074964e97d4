"""What every management route shares: the callers' credentials (session cookie or access
token), CSRF checks, One API's answer envelope, and gRPC errors as HTTP answers.

Credentials: ``Authorization: Bearer <access token>`` (or the bare token, as One API accepts)
is forwarded to auth as ``x-unigate-access-token``; otherwise the signed session cookie's
session id as ``x-unigate-session``. Auth decides who that is and what they may do.

CSRF: a cookie-authenticated write must echo the session's CSRF token (returned by login) in
``X-CSRF-Token``; compared in constant time. Bearer calls are exempt (a browser never adds
that header on its own). Writes are the non-GET methods.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from google.protobuf.message import Message

from unigate.v1 import admin_pb2_grpc, billing_pb2_grpc

log = logging.getLogger(__name__)


SESSION_METADATA = "x-unigate-session"
ACCESS_TOKEN_METADATA = "x-unigate-access-token"
CSRF_HEADER = "x-csrf-token"
ROLE_ADMIN, ROLE_ROOT = 10, 100
MAX_ACCESS_TOKEN_LENGTH = 256

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    # A pending password change (auth) or a provider that gave no balance.
    grpc.StatusCode.FAILED_PRECONDITION: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # Something outside failed, not the caller (the SMTP server, Turnstile's siteverify).
    grpc.StatusCode.ABORTED: 503,
}
# Auth's and billing's own words, meant for the caller; anything else is an internal error.
_CALLER_CODES = frozenset(_HTTP_STATUS)


class ApiError(Exception):
    """A refusal by the REST layer itself."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def envelope(data: object = None, message: str = "", **extra: object) -> dict[str, object]:
    """One API's answer: ``{"success", "message", "data"}`` (lists add ``total``)."""
    return {"success": True, "message": message, "data": data, **extra}


# One API answers a refused request with HTTP 200 and ``success: false``, and its clients
# depend on it (one-api-cli calls raise_for_status() and then reads ``success``). The statuses
# kept as such: 401 (no credentials, or a session that ended: One API's 401), 413 and 429
# (limits, which clients back off from), and 5xx (a fault of ours, which load balancers and
# monitoring must see). Unknown routes and methods (404/405) are answered by the router, not
# here, and keep their status.
KEPT_STATUSES = frozenset({401, 413, 429})


def failure(status: int, message: str) -> JSONResponse:
    """A refusal in One API's envelope, under One API's status convention."""
    kept = status in KEPT_STATUSES or status >= 500
    return JSONResponse(
        {"success": False, "message": message, "data": None}, status if kept else 200
    )


def route_failure(status: int, message: str) -> JSONResponse:
    """An unknown path or method (404/405): in the envelope, with its own status."""
    return JSONResponse({"success": False, "message": message, "data": None}, status)


def fields(message: Message) -> dict[str, Any]:
    """A flat message as JSON: every field by its proto name, numbers as numbers (the
    protobuf JSON mapping would turn int64 into strings, which One API's clients do not
    expect)."""
    out: dict[str, Any] = {}
    for f in message.DESCRIPTOR.fields:
        value = getattr(message, f.name)
        if isinstance(value, Message):
            value = fields(value)
        # The descriptor says what is repeated: the upb runtime's repeated message
        # containers are no subclasses of the Python ABCs.
        elif f.is_repeated:
            value = [fields(v) if isinstance(v, Message) else v for v in value]
        out[f.name] = value
    return out


def grpc_failure(exc: grpc.aio.AioRpcError, *, session_ended: bool = False) -> JSONResponse:
    """Auth's or billing's refusal. UNAUTHENTICATED is a 401 only when a session cookie
    ended (One API: no session, no token); a wrong access token or password is a refusal
    answered 200, as One API answers it."""
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED and not session_ended:
        return failure(200, exc.details() or "unauthenticated")
    if code in _CALLER_CODES:
        return failure(_HTTP_STATUS[code], exc.details() or code.name.lower())
    log.error("management call failed: %s %s", code, exc.details())
    return failure(503 if code == grpc.StatusCode.UNAVAILABLE else 500, "internal error")


@dataclass(frozen=True, slots=True)
class Caller:
    """The credentials of one request, as gRPC metadata for auth."""

    metadata: tuple[tuple[str, str], ...]
    via_cookie: bool


def _credentials(request: Request, *, write: bool) -> Caller:
    header = request.headers.get("authorization", "").strip()
    if header:
        scheme, _, rest = header.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else header
        if not token:
            raise ApiError(401, "empty access token")
        if len(token) > MAX_ACCESS_TOKEN_LENGTH or not token.isprintable():
            # Not one of ours (43 characters); gRPC metadata would refuse it anyway.
            raise ApiError(400, "invalid access token")
        return Caller(((ACCESS_TOKEN_METADATA, token),), via_cookie=False)
    session_id = request.session.get("sid")
    if not isinstance(session_id, str) or not session_id:
        raise ApiError(401, "not logged in: log in (POST /api/user/login) or send an access token")
    if write:
        expected = request.session.get("csrf")
        given = request.headers.get(CSRF_HEADER, "")
        if not isinstance(expected, str) or not hmac.compare_digest(
            expected.encode(), given.encode()
        ):
            raise ApiError(403, "missing or wrong X-CSRF-Token (returned by login)")
    return Caller(((SESSION_METADATA, session_id),), via_cookie=True)


async def reader(request: Request) -> Caller:
    """Dependency of routes that only read."""
    return _credentials(request, write=False)


async def writer(request: Request) -> Caller:
    """Dependency of routes that change state (CSRF-checked when the cookie authenticates)."""
    return _credentials(request, write=True)


# Route parameters: the caller of a reading route, and of a writing one (CSRF-checked).
# GET routes are never CSRF-checked, also One API's that change state (a new access token,
# channel tests, balance reads): the SameSite=Strict cookie is not sent on any cross-site
# request, so a forged GET arrives anonymous.
Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]


@dataclass(frozen=True)
class Stubs:
    admin: admin_pb2_grpc.AdminServiceStub
    billing: billing_pb2_grpc.BillingServiceStub
    timeout: float


StubsGetter = Callable[[], Stubs]
ClientIp = Callable[[Request], str]
Handler = Callable[..., Awaitable[Any]]


async def require_role(stubs: Stubs, caller: Caller, role: int) -> Any:
    """The caller's user record, if its role is at least ``role``."""
    from google.protobuf import empty_pb2

    me = await stubs.admin.GetSelf(
        empty_pb2.Empty(), metadata=caller.metadata, timeout=stubs.timeout
    )
    if me.role < role:
        raise ApiError(403, "your role may not do this")
    return me
