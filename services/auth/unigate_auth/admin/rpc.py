"""How an AdminService RPC is declared and served: the role decorator, the caller, refusals.

An RPC is written once, as ``async def Name(self, caller, request)`` under ``@rpc(role)``
(or ``async def Name(self, request)`` under ``@public``). The decorator turns it into the
gRPC handler ``Name(self, request, context)``: it resolves the caller from the metadata,
refuses a caller below ``role`` or one who must still change the default password, and
turns refusals into gRPC status codes. The RPC's name (for logs) is the function's own.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import asyncpg
import grpc
from google.protobuf import empty_pb2

from unigate.namespace import Namespace
from unigate.quota import QuotaStore
from unigate.rpc_acl import ADMIN, caller_identity
from unigate_auth.admin.sessions import (
    CALLER_COLUMNS,
    MIN_PASSWORD_LENGTH,
    ROLE_ROOT,
    STATUS_DISABLED,
    STATUS_ENABLED,
    Caller,
    LoginThrottle,
    Sessions,
    caller_by_access_token,
    caller_by_id,
)
from unigate_auth.billing_client import BillingClient
from unigate_auth.channel_tester import ChannelTester, Notify
from unigate_auth.mail_codes import MailCodes
from unigate_auth.oauth.common import Endpoints
from unigate_auth.oauth.flows import OAuthFlows
from unigate_auth.store import AuthStore

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]
Empty = empty_pb2.Empty

SESSION_METADATA = "x-unigate-session"
ACCESS_TOKEN_METADATA = "x-unigate-access-token"
# The attribute an RPC handler carries its declared least role in (PUBLIC: no caller needed).
ROLE_ATTRIBUTE = "admin_rpc_role"
PUBLIC = 0
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_MAX_NAME = 64


class Failure(Exception):
    """A refusal with its gRPC status; the message is meant for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def not_found(what: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"{what} not found")


def denied(message: str = "you may not do this") -> Failure:
    return Failure(grpc.StatusCode.PERMISSION_DENIED, message)


def invalid(message: str) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise invalid("a username is 1 to 64 letters, digits or _.@-")


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= _MAX_NAME:
        raise invalid(f"a {what} name needs 1 to {_MAX_NAME} characters")
    return name


def check_status(value: int, what: str) -> int:
    if value not in (STATUS_ENABLED, STATUS_DISABLED):
        raise invalid(f"a {what} status is 1 (enabled) or 2 (disabled)")
    return value


async def _abort(context: Context, rpc_name: str, exc: Exception) -> NoReturn:
    if isinstance(exc, Failure):
        log.debug("%s refused: %s", rpc_name, exc)
        await context.abort(exc.code, str(exc))
    if isinstance(exc, asyncpg.UniqueViolationError):
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, "a record with that name exists")
    if isinstance(exc, ValueError):  # the admin writes' refusals and billing's
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, asyncpg.DataError):
        # A value Postgres cannot hold (a NUL byte, a number out of its column's range):
        # the caller's input, whatever door it came through.
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, "a value is out of range or not storable"
        )
    log.error("%s failed", rpc_name)
    raise exc


class AdminBase:
    """The state every entity's RPCs share; ``AdminService`` composes them over it."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        secret_key: str,
        ns: Namespace,
        sessions: Sessions,
        throttle: LoginThrottle,
        quota: QuotaStore,
        notify: Notify,
        tester: ChannelTester,
        billing: BillingClient,
        version: str,
        oauth_flows: OAuthFlows,
        oauth_endpoints: Endpoints,
        codes: MailCodes,
        turnstile_url: str,
    ) -> None:
        self._pool = pool
        self._secret_key = secret_key
        self._ns = ns
        self._sessions = sessions
        self._throttle = throttle
        self._quota = quota
        self._notify = notify
        self._tester = tester
        self._billing = billing
        self._store = AuthStore(pool)
        self._channels = self._store.channels
        self._version = version
        self._oauth_flows = oauth_flows
        self._oauth_endpoints = oauth_endpoints
        self._codes = codes
        self._turnstile_url = turnstile_url
        self._started = int(time.time())

    async def _caller(self, context: Context, before_password_change: bool) -> Caller:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        session_id = metadata.get(SESSION_METADATA, "")
        access_token = metadata.get(ACCESS_TOKEN_METADATA, "")
        row: asyncpg.Record | None = None
        operator = False
        if session_id:
            user_id = await self._sessions.user_of(session_id)
            row = await caller_by_id(self._pool, user_id) if user_id is not None else None
        elif access_token:
            row = await caller_by_access_token(self._pool, access_token)
        elif caller_identity(context) == ADMIN:
            # The operator's certificate (the `unigate` CLI) with no user in the metadata acts
            # as root. Only a client certificate naming `admin` gets here: the gateway's
            # (`gateway`) cannot, whatever metadata it forwards, so /api callers never do.
            row = await self._root()
            operator = True
        if row is None:
            raise Failure(grpc.StatusCode.UNAUTHENTICATED, "not logged in (no valid session)")
        if row["status"] != STATUS_ENABLED:
            raise denied("this user is disabled")
        caller = Caller(
            id=row["id"],
            username=row["username"],
            role=row["role"],
            group=row["group"],
            # Root's forced password change guards the web login, not the operator's key.
            must_change_password=row["must_change_password"] and not operator,
            session_id=session_id,
        )
        if caller.must_change_password and not before_password_change:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the default password must be changed first (PUT /api/user/self)",
            )
        return caller

    async def _root(self) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(
            f"SELECT {CALLER_COLUMNS} FROM users WHERE role >= $1 ORDER BY id LIMIT 1", ROLE_ROOT
        )
        return row

    async def _broadcast(self, kind: str, ids: list[int]) -> None:
        try:
            await self._notify(kind, ids)
        except Exception:
            # Committed already; caches expire within AUTH_CACHE_TTL even without the news.
            log.exception("could not broadcast a %s change", kind)

    async def _option(self, key: str) -> str | None:
        value: str | None = await self._pool.fetchval(
            "SELECT value FROM options WHERE key = $1", key
        )
        return value


S = TypeVar("S", bound=AdminBase)
Handler = Callable[[S, Req, Context], Awaitable[Resp]]


def rpc(
    role: int, *, before_password_change: bool = False
) -> Callable[[Callable[[S, Caller, Req], Awaitable[Resp]]], Handler[S, Req, Resp]]:
    """Declare an RPC for callers of at least ``role``; ``before_password_change`` lets a
    caller who must still change the default password through (its own account only)."""

    def declare(body: Callable[[S, Caller, Req], Awaitable[Resp]]) -> Handler[S, Req, Resp]:
        @functools.wraps(body)
        async def handler(self: S, request: Req, context: Context) -> Resp:
            try:
                caller = await self._caller(context, before_password_change)
                if caller.role < role:
                    raise denied("your role may not do this")
                return await body(self, caller, request)
            except Exception as exc:
                await _abort(context, body.__name__, exc)

        setattr(handler, ROLE_ATTRIBUTE, role)
        return handler

    return declare


def public_or_user(
    body: Callable[[S, Caller | None, Req], Awaitable[Resp]],
) -> Handler[S, Req, Resp]:
    """Declare an RPC anyone may call, which acts for the caller when the metadata names one
    (a session or an access token, which must then be valid): the external logins, which
    log an anonymous caller in and bind the identity to a logged-in one."""

    @functools.wraps(body)
    async def handler(self: S, request: Req, context: Context) -> Resp:
        try:
            names = {k for k, _ in context.invocation_metadata() or ()}
            caller = None
            if names & {SESSION_METADATA, ACCESS_TOKEN_METADATA}:
                caller = await self._caller(context, before_password_change=False)
            return await body(self, caller, request)
        except Exception as exc:
            await _abort(context, body.__name__, exc)

    setattr(handler, ROLE_ATTRIBUTE, PUBLIC)
    return handler


def public(body: Callable[[S, Req], Awaitable[Resp]]) -> Handler[S, Req, Resp]:
    """Declare an RPC anyone may call (login, registration, the public status)."""

    @functools.wraps(body)
    async def handler(self: S, request: Req, context: Context) -> Resp:
        try:
            return await body(self, request)
        except Exception as exc:
            await _abort(context, body.__name__, exc)

    setattr(handler, ROLE_ATTRIBUTE, PUBLIC)
    return handler
