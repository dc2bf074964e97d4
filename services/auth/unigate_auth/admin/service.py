"""The AdminService gRPC implementation (``protos/unigate/v1/admin.proto``).

Every RPC names its least role; ``_call`` resolves the caller from the metadata, enforces the
role and the pending password change, and turns refusals into gRPC status codes. The role
rules are One API's (``controller/user.go``): an admin acts only on users below it, root on
everyone; only root promotes or demotes; root itself is never disabled, demoted or deleted.
A user sees only its own API keys; a key of someone else reads as not found.

Writes that change what routing or admission sees (channels, keys, users, options) are
broadcast on NATS (``unigate.bus``) so every auth drops its caches at once; a channel change
also bumps ``config_version`` so relays refetch it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import asyncpg
import grpc
import orjson
from google.protobuf import empty_pb2

from unigate import admin, unit_prices
from unigate.channel_types import balance_types, channel_type, speaks_websocket
from unigate.crypto import encrypt_secret
from unigate.namespace import Namespace
from unigate.pricing import QUOTA_PER_USD
from unigate.quota import QuotaStore
from unigate.urls import base_url_problem
from unigate.v1 import admin_pb2, admin_pb2_grpc
from unigate_auth.admin import records
from unigate_auth.admin.balances import BalanceUnavailable, read_balance
from unigate_auth.admin.records import (
    CHANNEL_COLUMNS,
    REDEMPTION_COLUMNS,
    TOKEN_COLUMNS,
    USER_COLUMNS,
    like,
    page_of,
)
from unigate_auth.admin.sessions import (
    MIN_PASSWORD_LENGTH,
    ROLE_ADMIN,
    ROLE_ROOT,
    ROLE_USER,
    STATUS_DISABLED,
    STATUS_ENABLED,
    Caller,
    LoginThrottle,
    Sessions,
    caller_by_access_token,
    caller_by_id,
    hash_access_token,
    hash_password,
    new_access_token,
    verify_password,
)
from unigate_auth.billing_client import BillingClient
from unigate_auth.channel_tester import ChannelTester, Notify
from unigate_auth.store import AuthStore, ChannelUnderTest

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]
Empty = empty_pb2.Empty

SESSION_METADATA = "x-unigate-session"
ACCESS_TOKEN_METADATA = "x-unigate-access-token"
# What a caller who must change the default password may still do.
_BEFORE_PASSWORD_CHANGE = frozenset({"GetSelf", "UpdateSelf", "Logout"})
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_MAX_NAME = 64
# Options whose values are credentials (One API hides keys ending in Token or Secret).
_SECRET_OPTION = re.compile(r"(secret|token|password|key)$", re.IGNORECASE)
_JSON_OPTIONS = frozenset(
    {
        "ModelRatio",
        "CompletionRatio",
        "CacheRatio",
        "CreateCacheRatio",
        "AudioRatio",
        "UnitPrice",
        "GroupRatio",
        "GroupRateLimits",
    }
)
_TEST_CONCURRENCY = 4
# Channel list orders a client may ask for (never interpolated from the request itself).
_CHANNEL_ORDERS = {
    "": "id DESC",
    "id": "id DESC",
    "used_quota": "used_quota DESC, id DESC",
    "priority": "priority DESC, id DESC",
    "response_time": "response_time DESC, id DESC",
    "balance": "balance DESC, id DESC",
}


class Failure(Exception):
    """A refusal with its gRPC status; the message is meant for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _not_found(what: str) -> Failure:
    return Failure(grpc.StatusCode.NOT_FOUND, f"{what} not found")


def _denied(message: str = "you may not do this") -> Failure:
    return Failure(grpc.StatusCode.PERMISSION_DENIED, message)


def _invalid(message: str) -> Failure:
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, message)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _invalid(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise _invalid("a username is 1 to 64 letters, digits or _.@-")


def _check_name(name: str, what: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= _MAX_NAME:
        raise _invalid(f"a {what} name needs 1 to {_MAX_NAME} characters")
    return name


def _status(value: int, what: str) -> int:
    if value not in (STATUS_ENABLED, STATUS_DISABLED):
        raise _invalid(f"a {what} status is 1 (enabled) or 2 (disabled)")
    return value


class AdminService(admin_pb2_grpc.AdminServiceServicer):
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
        self._version = version
        self._started = int(time.time())

    # ---- plumbing -----------------------------------------------------------------------
    async def _caller(self, context: Context, rpc: str) -> Caller:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        session_id = metadata.get(SESSION_METADATA, "")
        access_token = metadata.get(ACCESS_TOKEN_METADATA, "")
        row: asyncpg.Record | None = None
        if session_id:
            user_id = await self._sessions.user_of(session_id)
            row = await caller_by_id(self._pool, user_id) if user_id is not None else None
        elif access_token:
            row = await caller_by_access_token(self._pool, access_token)
        if row is None:
            raise Failure(grpc.StatusCode.UNAUTHENTICATED, "not logged in (no valid session)")
        if row["status"] != STATUS_ENABLED:
            raise _denied("this user is disabled")
        caller = Caller(
            id=row["id"],
            username=row["username"],
            role=row["role"],
            group=row["group"],
            must_change_password=row["must_change_password"],
            session_id=session_id,
        )
        if caller.must_change_password and rpc not in _BEFORE_PASSWORD_CHANGE:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the default password must be changed first (PUT /api/user/self)",
            )
        return caller

    async def _call(
        self,
        context: Context,
        rpc: str,
        role: int,
        handler: Callable[[Caller, Req], Awaitable[Resp]],
        request: Req,
    ) -> Resp:
        try:
            caller = await self._caller(context, rpc)
            if caller.role < role:
                raise _denied("your role may not do this")
            return await handler(caller, request)
        except Exception as exc:
            await self._abort(context, exc)

    async def _public(
        self, context: Context, handler: Callable[[Req], Awaitable[Resp]], request: Req
    ) -> Resp:
        try:
            return await handler(request)
        except Exception as exc:
            await self._abort(context, exc)

    async def _abort(self, context: Context, exc: Exception) -> NoReturn:
        if isinstance(exc, Failure):
            await context.abort(exc.code, str(exc))
        if isinstance(exc, asyncpg.UniqueViolationError):
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "a record with that name exists")
        if isinstance(exc, admin.AdminError | ValueError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, asyncpg.DataError):
            # A value Postgres cannot hold (a NUL byte, a number out of its column's range):
            # the caller's input, whatever door it came through.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "a value is out of range or not storable"
            )
        raise exc

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

    # ---- sessions and the caller's own account ------------------------------------------
    async def Login(self, request: admin_pb2.LoginRequest, context: Context) -> Any:
        return await self._public(context, self._login, request)

    async def _login(self, req: admin_pb2.LoginRequest) -> admin_pb2.LoginResponse:
        wait = await self._throttle.blocked_for(req.username, req.client_ip)
        if wait:
            raise Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many failed logins; try again in {wait} seconds",
            )
        if delay := await self._throttle.delay_for(req.username):
            await asyncio.sleep(delay)
        row = await self._pool.fetchrow(
            f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1", req.username
        )
        if not await verify_password(row["password_hash"] if row else None, req.password):
            await self._throttle.failed(req.username, req.client_ip)
            raise Failure(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")
        assert row is not None
        if row["status"] != STATUS_ENABLED:
            raise _denied("this user is disabled")
        await self._throttle.succeeded(req.username, req.client_ip)
        session_id = await self._sessions.create(row["id"])
        return admin_pb2.LoginResponse(
            user=records.user_message(row),
            session_id=session_id,
            require_password_change=row["must_change_password"],
        )

    async def Logout(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "Logout", ROLE_USER, self._logout, request)

    async def _logout(self, caller: Caller, _: Empty) -> Empty:
        if caller.session_id:
            await self._sessions.end(caller.session_id, caller.id)
        return Empty()

    async def Register(self, request: admin_pb2.RegisterRequest, context: Context) -> Any:
        return await self._public(context, self._register, request)

    async def _username_free(self, username: str, user_id: int = 0) -> None:
        """Usernames differ by more than case ("Root" is root): ALREADY_EXISTS otherwise."""
        _check_username(username)
        taken = await self._pool.fetchval(
            "SELECT 1 FROM users WHERE lower(username) = lower($1) AND id <> $2",
            username,
            user_id,
        )
        if taken:
            raise Failure(grpc.StatusCode.ALREADY_EXISTS, "that username is taken")

    async def _register(self, req: admin_pb2.RegisterRequest) -> admin_pb2.User:
        if (await self._option("RegisterEnabled") or "").lower() != "true":
            raise _denied("registration is turned off (option RegisterEnabled)")
        await self._username_free(req.username)
        _check_password(req.password)
        try:
            quota = int(await self._option("QuotaForNewUser") or 0)
        except ValueError:
            quota = 0
        user_id = await admin.create_user(
            self._pool, username=req.username, password=req.password, quota=max(quota, 0)
        )
        await self._pool.execute(
            "UPDATE users SET display_name = $2, email = $3 WHERE id = $1",
            user_id,
            req.display_name or req.username,
            req.email,
        )
        return await self._user(user_id)

    async def GetSelf(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "GetSelf", ROLE_USER, self._get_self, request)

    async def _get_self(self, caller: Caller, _: Empty) -> admin_pb2.User:
        return await self._user(caller.id)

    async def UpdateSelf(self, request: admin_pb2.UpdateSelfRequest, context: Context) -> Any:
        return await self._call(context, "UpdateSelf", ROLE_USER, self._update_self, request)

    async def _update_self(
        self, caller: Caller, req: admin_pb2.UpdateSelfRequest
    ) -> admin_pb2.User:
        if caller.must_change_password and not req.HasField("password"):
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, "the default password must be changed first"
            )
        if req.HasField("password"):
            current = await self._pool.fetchval(
                "SELECT password_hash FROM users WHERE id = $1", caller.id
            )
            if not await verify_password(current, req.original_password):
                raise _denied("the original password is wrong")
            _check_password(req.password)
            if req.password == req.original_password:
                raise _invalid("the new password must differ from the current one")
            # A new password ends every other session and the access token: whoever had
            # the old password may have made either.
            await self._pool.execute(
                "UPDATE users SET password_hash = $2, must_change_password = FALSE,"
                " access_token_hash = NULL, updated_time = $3 WHERE id = $1",
                caller.id,
                await hash_password(req.password),
                int(time.time()),
            )
            await self._sessions.end_all(caller.id, keep=caller.session_id)
        if req.HasField("display_name"):
            await self._pool.execute(
                "UPDATE users SET display_name = $2 WHERE id = $1",
                caller.id,
                _check_name(req.display_name, "display"),
            )
        if req.HasField("email"):
            await self._pool.execute(
                "UPDATE users SET email = $2 WHERE id = $1", caller.id, req.email.strip()
            )
        return await self._user(caller.id)

    async def NewAccessToken(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "NewAccessToken", ROLE_USER, self._new_access, request)

    async def _new_access(self, caller: Caller, _: Empty) -> admin_pb2.AccessToken:
        token = new_access_token()
        await self._pool.execute(
            "UPDATE users SET access_token_hash = $2 WHERE id = $1",
            caller.id,
            hash_access_token(token),
        )
        return admin_pb2.AccessToken(access_token=token)

    async def Redeem(self, request: admin_pb2.RedeemRequest, context: Context) -> Any:
        return await self._call(context, "Redeem", ROLE_USER, self._redeem, request)

    async def _redeem(
        self, caller: Caller, req: admin_pb2.RedeemRequest
    ) -> admin_pb2.RedeemResponse:
        # Redeeming writes the ledger's top-up row; the logic (exactly once under races) is
        # billing's, shared as the CLI shares it.
        amount = await self._billing.redeem(req.key.strip(), caller.id)
        return admin_pb2.RedeemResponse(quota=amount)

    async def AvailableModels(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "AvailableModels", ROLE_USER, self._available, request)

    async def _available(self, caller: Caller, _: Empty) -> admin_pb2.Names:
        return admin_pb2.Names(names=await self._store.models_for_group(caller.group))

    # ---- users --------------------------------------------------------------------------
    async def _user(self, user_id: int) -> admin_pb2.User:
        row = await self._pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        if row is None:
            raise _not_found("user")
        return records.user_message(row)

    async def _target_user(self, caller: Caller, where: str, value: object) -> asyncpg.Record:
        row = await self._pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE {where}", value)
        if row is None:
            raise _not_found("user")
        if not caller.outranks(row["role"]):
            raise _denied("you may act only on users below your own role")
        return row

    async def ListUsers(self, request: admin_pb2.ListRequest, context: Context) -> Any:
        return await self._call(context, "ListUsers", ROLE_ADMIN, self._list_users, request)

    async def _list_users(self, caller: Caller, req: admin_pb2.ListRequest) -> admin_pb2.UserList:
        limit, offset = page_of(req.page, req.size)
        where, args = "", list[object]()
        if req.keyword:
            where = (
                "WHERE username ILIKE $1 OR display_name ILIKE $1 OR email ILIKE $1"
                " OR id::text = $2"
            )
            args = [like(req.keyword), req.keyword]
        total = await self._pool.fetchval(f"SELECT count(*) FROM users {where}", *args)
        rows = await self._pool.fetch(
            f"SELECT {USER_COLUMNS} FROM users {where} ORDER BY id DESC"
            f" LIMIT {limit} OFFSET {offset}",
            *args,
        )
        return admin_pb2.UserList(users=[records.user_message(r) for r in rows], total=total)

    async def GetUser(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "GetUser", ROLE_ADMIN, self._get_user, request)

    async def _get_user(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.User:
        if req.id == caller.id:
            return await self._user(caller.id)
        return records.user_message(await self._target_user(caller, "id = $1", req.id))

    async def CreateUser(self, request: admin_pb2.UserInput, context: Context) -> Any:
        return await self._call(context, "CreateUser", ROLE_ADMIN, self._create_user, request)

    async def _create_user(self, caller: Caller, req: admin_pb2.UserInput) -> admin_pb2.User:
        await self._username_free(req.username)
        _check_password(req.password)
        user_id = await admin.create_user(
            self._pool,
            username=req.username,
            password=req.password,
            group=req.group if req.HasField("group") and req.group else "default",
            rpm_limit=req.rpm_limit,
            tpm_limit=req.tpm_limit,
        )
        await self._pool.execute(
            "UPDATE users SET display_name = $2, email = $3 WHERE id = $1",
            user_id,
            req.display_name or req.username,
            req.email,
        )
        if req.quota:
            await admin.adjust_quota(
                self._pool,
                target="user",
                target_id=user_id,
                actor_id=caller.id,
                set_to=req.quota,
                quota=self._quota,
            )
        return await self._user(user_id)

    async def UpdateUser(self, request: admin_pb2.UserInput, context: Context) -> Any:
        return await self._call(context, "UpdateUser", ROLE_ADMIN, self._update_user, request)

    async def _update_user(self, caller: Caller, req: admin_pb2.UserInput) -> admin_pb2.User:
        row = await self._target_user(caller, "id = $1", req.id)
        sets: dict[str, object] = {}
        if req.HasField("username"):
            await self._username_free(req.username, req.id)
            sets["username"] = req.username
        if req.HasField("display_name"):
            sets["display_name"] = _check_name(req.display_name, "display")
        if req.HasField("email"):
            sets["email"] = req.email.strip()
        if req.HasField("group"):
            sets['"group"'] = _check_name(req.group, "group")
        for field in ("rpm_limit", "tpm_limit"):
            if req.HasField(field):
                if getattr(req, field) < 0:
                    raise _invalid(f"{field} cannot be negative")
                sets[field] = getattr(req, field)
        if req.HasField("password"):
            _check_password(req.password)
            sets["password_hash"] = await hash_password(req.password)
            sets["access_token_hash"] = None  # a reset ends the access token too
        if sets:
            sets["updated_time"] = int(time.time())
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            await self._pool.execute(
                f"UPDATE users SET {columns} WHERE id = $1", req.id, *sets.values()
            )
        if req.HasField("quota") and req.quota != row["quota"]:
            await admin.adjust_quota(
                self._pool,
                target="user",
                target_id=req.id,
                actor_id=caller.id,
                set_to=req.quota,
                quota=self._quota,
            )
        if req.HasField("password"):
            await self._sessions.end_all(req.id)
        await self._broadcast("user", [req.id])
        return await self._user(req.id)

    async def DeleteUser(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "DeleteUser", ROLE_ADMIN, self._delete_user, request)

    async def _delete_user(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        row = await self._target_user(caller, "id = $1", req.id)
        await self._remove_user(row)
        return Empty()

    async def _remove_user(self, row: asyncpg.Record) -> None:
        if row["role"] >= ROLE_ROOT:
            raise _denied("the root user cannot be deleted")
        await self._pool.execute("DELETE FROM users WHERE id = $1", row["id"])
        await self._sessions.end_all(row["id"])
        await self._broadcast("user", [row["id"]])

    async def ManageUser(self, request: admin_pb2.ManageUserRequest, context: Context) -> Any:
        return await self._call(context, "ManageUser", ROLE_ADMIN, self._manage_user, request)

    async def _manage_user(
        self, caller: Caller, req: admin_pb2.ManageUserRequest
    ) -> admin_pb2.User:
        row = await self._target_user(caller, "username = $1", req.username)
        user_id, role = row["id"], row["role"]
        if req.action == "delete":
            await self._remove_user(row)
            return records.user_message(row)
        if req.action in ("promote", "demote") and not caller.is_root:
            raise _denied("only root promotes or demotes")
        if req.action == "promote":
            if role != ROLE_USER:
                raise _invalid("only a common user can be promoted (to admin)")
            await self._pool.execute(
                "UPDATE users SET role = $2 WHERE id = $1", user_id, ROLE_ADMIN
            )
        elif req.action == "demote":
            if role != ROLE_ADMIN:
                raise _invalid("only an admin can be demoted")
            await self._set_user(user_id, "role", ROLE_USER)
        elif req.action in ("enable", "disable"):
            if role >= ROLE_ROOT:
                raise _denied("the root user cannot be disabled")
            status = STATUS_ENABLED if req.action == "enable" else STATUS_DISABLED
            await self._set_user(user_id, "status", status)
            if status == STATUS_DISABLED:
                await self._sessions.end_all(user_id)
        else:
            raise _invalid("action is one of enable, disable, promote, demote, delete")
        await self._broadcast("user", [user_id])
        return await self._user(user_id)

    async def _set_user(self, user_id: int, column: str, value: int) -> None:
        await self._pool.execute(
            f"UPDATE users SET {column} = $2, updated_time = $3 WHERE id = $1",
            user_id,
            value,
            int(time.time()),
        )

    # ---- API keys -----------------------------------------------------------------------
    async def _owner_for(self, caller: Caller, user_id: int) -> int:
        """Whose keys a call may list or create: the caller's own, or (admin) a user's below."""
        if user_id in (0, caller.id):
            return caller.id
        if not caller.is_admin:
            raise _denied("you may manage only your own keys")
        await self._target_user(caller, "id = $1", user_id)
        return user_id

    async def _owned_token(self, caller: Caller, token_id: int) -> asyncpg.Record:
        row = await self._pool.fetchrow(
            f"SELECT {TOKEN_COLUMNS}, (SELECT role FROM users u WHERE u.id = t.user_id) AS role"
            " FROM tokens t WHERE id = $1",
            token_id,
        )
        # Someone else's key reads as absent: its existence is not the caller's business.
        if row is None or (
            row["user_id"] != caller.id and not (caller.is_admin and caller.outranks(row["role"]))
        ):
            raise _not_found("token")
        return row

    async def ListTokens(self, request: admin_pb2.ListRequest, context: Context) -> Any:
        return await self._call(context, "ListTokens", ROLE_USER, self._list_tokens, request)

    async def _list_tokens(self, caller: Caller, req: admin_pb2.ListRequest) -> admin_pb2.TokenList:
        owner = await self._owner_for(caller, req.user_id)
        limit, offset = page_of(req.page, req.size)
        where, args = "WHERE user_id = $1", list[object]([owner])
        if req.keyword:
            where += " AND name ILIKE $2"
            args.append(like(req.keyword))
        total = await self._pool.fetchval(f"SELECT count(*) FROM tokens {where}", *args)
        rows = await self._pool.fetch(
            f"SELECT {TOKEN_COLUMNS} FROM tokens {where} ORDER BY id DESC"
            f" LIMIT {limit} OFFSET {offset}",
            *args,
        )
        return admin_pb2.TokenList(tokens=[records.token_message(r) for r in rows], total=total)

    async def GetToken(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "GetToken", ROLE_USER, self._get_token, request)

    async def _get_token(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.Token:
        return records.token_message(await self._owned_token(caller, req.id))

    async def CreateToken(self, request: admin_pb2.TokenInput, context: Context) -> Any:
        return await self._call(context, "CreateToken", ROLE_USER, self._create_token, request)

    async def _create_token(self, caller: Caller, req: admin_pb2.TokenInput) -> admin_pb2.Token:
        owner = await self._owner_for(caller, req.user_id)
        if req.remain_quota < 0:
            raise _invalid("remain_quota cannot be negative")
        created = await admin.create_token(
            self._pool,
            user_id=owner,
            name=_check_name(req.name, "token"),
            remain_quota=req.remain_quota,
            unlimited_quota=req.unlimited_quota,
            expired_time=req.expired_time if req.HasField("expired_time") else -1,
            models=req.models,
            subnet=self._subnets(req.subnet),
        )
        if req.rpm_limit or req.tpm_limit:
            await self._pool.execute(
                "UPDATE tokens SET rpm_limit = $2, tpm_limit = $3 WHERE id = $1",
                created.id,
                max(req.rpm_limit, 0),
                max(req.tpm_limit, 0),
            )
        row = await self._owned_token(caller, created.id)
        return records.token_message(row, key=created.key)

    @staticmethod
    def _subnets(text: str) -> str:
        for part in records.split_list(text):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise _invalid(f"{part!r} is not an IP network (CIDR)") from None
        return text

    async def UpdateToken(self, request: admin_pb2.TokenInput, context: Context) -> Any:
        return await self._call(context, "UpdateToken", ROLE_USER, self._update_token, request)

    async def _update_token(self, caller: Caller, req: admin_pb2.TokenInput) -> admin_pb2.Token:
        row = await self._owned_token(caller, req.id)
        sets: dict[str, object] = {}
        if req.HasField("name"):
            sets["name"] = _check_name(req.name, "token")
        if req.HasField("status"):
            sets["status"] = _status(req.status, "token")
        if req.HasField("expired_time"):
            sets["expired_time"] = req.expired_time
        if req.HasField("unlimited_quota"):
            sets["unlimited_quota"] = req.unlimited_quota
        if req.HasField("models"):
            sets["models"] = ",".join(records.split_list(req.models))
        if req.HasField("subnet"):
            sets["subnet"] = ",".join(records.split_list(self._subnets(req.subnet)))
        for field in ("rpm_limit", "tpm_limit"):
            if req.HasField(field):
                sets[field] = max(getattr(req, field), 0)
        if sets:
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            await self._pool.execute(
                f"UPDATE tokens SET {columns} WHERE id = $1", req.id, *sets.values()
            )
        if req.HasField("remain_quota") and req.remain_quota != row["remain_quota"]:
            await admin.adjust_quota(
                self._pool,
                target="token",
                target_id=req.id,
                actor_id=caller.id,
                set_to=req.remain_quota,
                quota=self._quota,
            )
        await self._broadcast("token", [req.id])
        return records.token_message(await self._owned_token(caller, req.id))

    async def DeleteToken(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "DeleteToken", ROLE_USER, self._delete_token, request)

    async def _delete_token(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        await self._owned_token(caller, req.id)
        await self._pool.execute("DELETE FROM tokens WHERE id = $1", req.id)
        await self._broadcast("token", [req.id])
        return Empty()

    # ---- channels -----------------------------------------------------------------------
    async def _channel_row(self, channel_id: int) -> asyncpg.Record:
        row = await self._pool.fetchrow(
            f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1", channel_id
        )
        if row is None:
            raise _not_found("channel")
        return row

    async def _channel(self, channel_id: int) -> admin_pb2.ChannelInfo:
        return records.channel_message(await self._channel_row(channel_id), self._secret_key)

    async def ListChannels(self, request: admin_pb2.ListRequest, context: Context) -> Any:
        return await self._call(context, "ListChannels", ROLE_ADMIN, self._list_channels, request)

    async def _list_channels(
        self, caller: Caller, req: admin_pb2.ListRequest
    ) -> admin_pb2.ChannelList:
        limit, offset = page_of(req.page, req.size)
        where, args = "", list[object]()
        if req.keyword:
            where = "WHERE name ILIKE $1 OR models ILIKE $1 OR id::text = $2"
            args = [like(req.keyword), req.keyword]
        total = await self._pool.fetchval(f"SELECT count(*) FROM channels {where}", *args)
        order = _CHANNEL_ORDERS.get(req.order)
        if order is None:
            raise _invalid(
                f"order must be one of: {', '.join(o or '(empty)' for o in _CHANNEL_ORDERS)}"
            )
        rows = await self._pool.fetch(
            f"SELECT {CHANNEL_COLUMNS} FROM channels {where} ORDER BY {order}"
            f" LIMIT {limit} OFFSET {offset}",
            *args,
        )
        channels = [records.channel_message(r, self._secret_key) for r in rows]
        return admin_pb2.ChannelList(channels=channels, total=total)

    async def GetChannel(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "GetChannel", ROLE_ADMIN, self._get_channel, request)

    async def _get_channel(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.ChannelInfo:
        return await self._channel(req.id)

    async def CreateChannel(self, request: admin_pb2.ChannelInput, context: Context) -> Any:
        return await self._call(context, "CreateChannel", ROLE_ADMIN, self._create_channel, request)

    async def _create_channel(
        self, caller: Caller, req: admin_pb2.ChannelInput
    ) -> admin_pb2.ChannelInfo:
        if not req.key.strip():
            raise _invalid("a channel needs a key")
        channel_id = await admin.create_channel(
            self._pool,
            secret_key=self._secret_key,
            type=req.type,
            name=_check_name(req.name, "channel") if req.HasField("name") else "",
            key=req.key.strip(),
            models=req.models,
            base_url=req.base_url.strip(),
            group=req.group or "default",
            priority=req.priority,
            weight=req.weight if req.HasField("weight") else 1,
            model_mapping=orjson.loads(records.json_object(req.model_mapping, "model_mapping")),
            config=orjson.loads(records.json_object(req.config, "config")),
            system_prompt=req.system_prompt,
        )
        if req.timeout_ms or (req.HasField("status") and req.status != STATUS_ENABLED):
            await self._update_channel(
                caller,
                admin_pb2.ChannelInput(
                    id=channel_id, timeout_ms=req.timeout_ms, status=req.status or STATUS_ENABLED
                ),
            )
        await self._broadcast("channel", [channel_id])
        return await self._channel(channel_id)

    async def UpdateChannel(self, request: admin_pb2.ChannelInput, context: Context) -> Any:
        return await self._call(context, "UpdateChannel", ROLE_ADMIN, self._update_channel, request)

    async def _update_channel(
        self, caller: Caller, req: admin_pb2.ChannelInput
    ) -> admin_pb2.ChannelInfo:
        sets: dict[str, object] = {}
        if req.HasField("type"):
            if channel_type(req.type) is None:
                raise _invalid(f"unknown channel type {req.type}")
            sets["type"] = req.type
        if req.HasField("name"):
            sets["name"] = _check_name(req.name, "channel")
        if req.HasField("key") and req.key.strip():
            sets["key_enc"] = encrypt_secret(req.key.strip(), self._secret_key)
        if req.HasField("status"):
            sets["status"] = _status(req.status, "channel")
            sets["status_reason"] = ""
            sets["status_time"] = int(time.time())
        if req.HasField("base_url"):
            # Its scheme is checked against the channel's type below, once the type is known.
            sets["base_url"] = req.base_url.strip()
        if req.HasField("models"):
            models = records.split_list(req.models)
            if not models:
                raise _invalid("a channel needs at least one model")
            sets["models"] = ",".join(models)
        if req.HasField("group"):
            sets['"group"'] = ",".join(records.split_list(req.group)) or "default"
        if req.HasField("model_mapping"):
            sets["model_mapping"] = records.json_object(req.model_mapping, "model_mapping")
        if req.HasField("config"):
            sets["config"] = records.json_object(req.config, "config")
        if req.HasField("priority"):
            sets["priority"] = req.priority
        if req.HasField("weight"):
            if req.weight < 0:
                raise _invalid("weight cannot be negative")
            sets["weight"] = req.weight
        if req.HasField("system_prompt"):
            sets["system_prompt"] = req.system_prompt
        if req.HasField("timeout_ms"):
            sets["timeout_ms"] = max(req.timeout_ms, 0)
        casts = {"model_mapping": "::jsonb", "config": "::jsonb"}
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval("SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", req.id)
            if exists is None:
                raise _not_found("channel")
            columns = "".join(f", {c} = ${i + 2}{casts.get(c, '')}" for i, c in enumerate(sets))
            row = await conn.fetchrow(
                f"UPDATE channels SET config_version = config_version + 1{columns}"
                ' WHERE id = $1 RETURNING models, "group", priority, weight, status, type,'
                " base_url",
                req.id,
                *sets.values(),
            )
            if ("base_url" in sets or "type" in sets) and (
                problem := base_url_problem(
                    row["base_url"], websocket=speaks_websocket(row["type"])
                )
            ):
                raise _invalid(problem)  # rolls the update back
            # Abilities are derived from the channel (One API's rule): rebuilt on every change.
            await conn.execute("DELETE FROM abilities WHERE channel_id = $1", req.id)
            await conn.executemany(
                'INSERT INTO abilities ("group", model, channel_id, enabled, priority, weight)'
                " VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (g, m, req.id, row["status"] == STATUS_ENABLED, row["priority"], row["weight"])
                    for g in records.split_list(row["group"])
                    for m in records.split_list(row["models"])
                ],
            )
        await self._broadcast("channel", [req.id])
        return await self._channel(req.id)

    async def DeleteChannel(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "DeleteChannel", ROLE_ADMIN, self._delete_channel, request)

    async def _delete_channel(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        if await self._pool.fetchval("DELETE FROM channels WHERE id = $1 RETURNING id", req.id):
            await self._broadcast("channel", [req.id])
            return Empty()
        raise _not_found("channel")

    async def DeleteDisabledChannels(self, request: Empty, context: Context) -> Any:
        return await self._call(
            context, "DeleteDisabledChannels", ROLE_ADMIN, self._delete_disabled, request
        )

    async def _delete_disabled(self, caller: Caller, _: Empty) -> admin_pb2.Count:
        rows = await self._pool.fetch("DELETE FROM channels WHERE status <> 1 RETURNING id")
        ids = [r["id"] for r in rows]
        if ids:
            await self._broadcast("channel", ids)
        return admin_pb2.Count(count=len(ids))

    async def TestChannel(self, request: admin_pb2.ChannelTestRequest, context: Context) -> Any:
        return await self._call(context, "TestChannel", ROLE_ADMIN, self._test_channel, request)

    async def _test_channel(
        self, caller: Caller, req: admin_pb2.ChannelTestRequest
    ) -> admin_pb2.ChannelTestResult:
        row = await self._channel_row(req.id)
        models = records.split_list(row["models"])
        model = req.model or (models[0] if models else "")
        if model not in models:
            raise _invalid(f"the channel does not serve {model!r}")
        mapping = orjson.loads(row["model_mapping"] or "{}")
        ms = await self._tester.test(
            ChannelUnderTest(
                id=row["id"],
                type=row["type"],
                model=model,
                upstream_model=str(mapping.get(model) or model),
                config_version=row["config_version"],
            )
        )
        await self._store.record_test(row["id"], ms or 0, int(time.time()))
        if ms is None:
            return admin_pb2.ChannelTestResult(
                id=row["id"], success=False, message="the test request failed (see auth's log)"
            )
        return admin_pb2.ChannelTestResult(id=row["id"], success=True, time_ms=ms)

    async def TestChannels(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "TestChannels", ROLE_ADMIN, self._test_channels, request)

    async def _test_channels(self, caller: Caller, _: Empty) -> admin_pb2.ChannelTestResults:
        ids = [r["id"] for r in await self._pool.fetch("SELECT id FROM channels ORDER BY id")]
        gate = asyncio.Semaphore(_TEST_CONCURRENCY)

        async def one(channel_id: int) -> admin_pb2.ChannelTestResult:
            async with gate:
                try:
                    return await self._test_channel(
                        caller, admin_pb2.ChannelTestRequest(id=channel_id)
                    )
                except Failure as exc:
                    return admin_pb2.ChannelTestResult(id=channel_id, message=str(exc))

        return admin_pb2.ChannelTestResults(results=await asyncio.gather(*map(one, ids)))

    async def UpdateChannelBalance(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(
            context, "UpdateChannelBalance", ROLE_ADMIN, self._update_balance, request
        )

    async def _update_balance(
        self, caller: Caller, req: admin_pb2.IdRequest
    ) -> admin_pb2.ChannelBalance:
        row = await self._channel_row(req.id)
        keys = records.channel_keys(row, self._secret_key)
        try:
            balance = await read_balance(row["type"], row["base_url"], keys[0] if keys else "")
        except BalanceUnavailable as exc:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        now = int(time.time())
        # A balance is a reading, not configuration: no config_version bump, no broadcast.
        await self._pool.execute(
            "UPDATE channels SET balance = $2, balance_updated_time = $3 WHERE id = $1",
            req.id,
            balance,
            now,
        )
        return admin_pb2.ChannelBalance(id=req.id, balance=balance, updated_time=now)

    async def UpdateChannelBalances(self, request: Empty, context: Context) -> Any:
        return await self._call(
            context, "UpdateChannelBalances", ROLE_ADMIN, self._update_balances, request
        )

    async def _update_balances(self, caller: Caller, _: Empty) -> admin_pb2.ChannelBalances:
        rows = await self._pool.fetch(
            "SELECT id FROM channels WHERE type = ANY($1::int[]) ORDER BY id", balance_types()
        )
        out = []
        for r in rows:
            try:
                out.append(await self._update_balance(caller, admin_pb2.IdRequest(id=r["id"])))
            except Failure as exc:
                out.append(admin_pb2.ChannelBalance(id=r["id"], error=str(exc)))
        return admin_pb2.ChannelBalances(balances=out)

    async def ModelsByType(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "ModelsByType", ROLE_USER, self._models_by_type, request)

    async def _models_by_type(self, caller: Caller, _: Empty) -> admin_pb2.ChannelModels:
        by_type: dict[int, set[str]] = {}
        for r in await self._pool.fetch("SELECT type, models FROM channels"):
            by_type.setdefault(r["type"], set()).update(records.split_list(r["models"]))
        out = admin_pb2.ChannelModels(all=sorted(set().union(*by_type.values())))
        for type_id, models in by_type.items():
            out.by_type[type_id].names.extend(sorted(models))
        return out

    # ---- redemption codes ---------------------------------------------------------------
    async def ListRedemptions(self, request: admin_pb2.ListRequest, context: Context) -> Any:
        return await self._call(
            context, "ListRedemptions", ROLE_ADMIN, self._list_redemptions, request
        )

    async def _list_redemptions(
        self, caller: Caller, req: admin_pb2.ListRequest
    ) -> admin_pb2.RedemptionList:
        limit, offset = page_of(req.page, req.size)
        where, args = "", list[object]()
        if req.keyword:
            where = "WHERE name ILIKE $1 OR id::text = $2"
            args = [like(req.keyword), req.keyword]
        total = await self._pool.fetchval(f"SELECT count(*) FROM redemptions {where}", *args)
        rows = await self._pool.fetch(
            f"SELECT {REDEMPTION_COLUMNS} FROM redemptions {where} ORDER BY id DESC"
            f" LIMIT {limit} OFFSET {offset}",
            *args,
        )
        return admin_pb2.RedemptionList(
            redemptions=[records.redemption_message(r) for r in rows], total=total
        )

    async def _redemption(self, redemption_id: int) -> admin_pb2.Redemption:
        row = await self._pool.fetchrow(
            f"SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE id = $1", redemption_id
        )
        if row is None:
            raise _not_found("redemption")
        return records.redemption_message(row)

    async def GetRedemption(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(context, "GetRedemption", ROLE_ADMIN, self._get_redemption, request)

    async def _get_redemption(
        self, caller: Caller, req: admin_pb2.IdRequest
    ) -> admin_pb2.Redemption:
        return await self._redemption(req.id)

    async def CreateRedemptions(self, request: admin_pb2.RedemptionInput, context: Context) -> Any:
        return await self._call(
            context, "CreateRedemptions", ROLE_ADMIN, self._create_redemptions, request
        )

    async def _create_redemptions(
        self, caller: Caller, req: admin_pb2.RedemptionInput
    ) -> admin_pb2.Names:
        codes = await self._billing.create_redemptions(
            req.name, req.quota, req.count or 1, created_by=caller.id
        )
        return admin_pb2.Names(names=codes)

    async def UpdateRedemption(self, request: admin_pb2.RedemptionInput, context: Context) -> Any:
        return await self._call(
            context, "UpdateRedemption", ROLE_ADMIN, self._update_redemption, request
        )

    async def _update_redemption(
        self, caller: Caller, req: admin_pb2.RedemptionInput
    ) -> admin_pb2.Redemption:
        current = await self._redemption(req.id)
        if current.status == 3:
            raise _invalid("a used redemption code cannot be changed")
        sets: dict[str, object] = {}
        if req.HasField("name"):
            sets["name"] = _check_name(req.name, "redemption")
        if req.HasField("quota"):
            if req.quota <= 0:
                raise _invalid("a redemption code must be worth a positive quota")
            sets["quota"] = req.quota
        if req.HasField("status"):
            sets["status"] = _status(req.status, "redemption")
        if sets:
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            # status <> 3 again: a code redeemed meanwhile stays as it was used.
            await self._pool.execute(
                f"UPDATE redemptions SET {columns} WHERE id = $1 AND status <> 3",
                req.id,
                *sets.values(),
            )
        return await self._redemption(req.id)

    async def DeleteRedemption(self, request: admin_pb2.IdRequest, context: Context) -> Any:
        return await self._call(
            context, "DeleteRedemption", ROLE_ADMIN, self._delete_redemption, request
        )

    async def _delete_redemption(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        if await self._pool.fetchval("DELETE FROM redemptions WHERE id = $1 RETURNING id", req.id):
            return Empty()
        raise _not_found("redemption")

    # ---- options, groups, status --------------------------------------------------------
    async def GetOptions(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "GetOptions", ROLE_ROOT, self._get_options, request)

    async def _get_options(self, caller: Caller, _: Empty) -> admin_pb2.OptionList:
        rows = await self._pool.fetch("SELECT key, value FROM options ORDER BY key")
        options = {r["key"]: r["value"] for r in rows if not _SECRET_OPTION.search(r["key"])}
        # The unit price table is shown as in force (One API shows its built-in ModelRatio so).
        options.setdefault("UnitPrice", unit_prices.defaults_json())
        return admin_pb2.OptionList(
            options=[admin_pb2.OptionEntry(key=k, value=v) for k, v in sorted(options.items())]
        )

    async def UpdateOption(self, request: admin_pb2.OptionEntry, context: Context) -> Any:
        return await self._call(context, "UpdateOption", ROLE_ROOT, self._update_option, request)

    async def _update_option(self, caller: Caller, req: admin_pb2.OptionEntry) -> Empty:
        if not req.key or len(req.key) > 128:
            raise _invalid("an option needs a key of at most 128 characters")
        if req.key in _JSON_OPTIONS:
            records.json_object(req.value, req.key)
        if req.key == "UnitPrice":
            try:
                unit_prices.parse_unit_prices(req.value)
            except ValueError as exc:
                raise _invalid(str(exc)) from None
        await self._pool.execute(
            "INSERT INTO options (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            req.key,
            req.value,
        )
        await self._broadcast("option", [])
        return Empty()

    async def ListGroups(self, request: Empty, context: Context) -> Any:
        return await self._call(context, "ListGroups", ROLE_ADMIN, self._list_groups, request)

    async def _list_groups(self, caller: Caller, _: Empty) -> admin_pb2.Names:
        groups = {"default"}
        raw = await self._option("GroupRatio")
        if raw:
            try:
                value = orjson.loads(raw)
                if isinstance(value, dict):
                    groups.update(str(k) for k in value)
            except orjson.JSONDecodeError:
                pass
        rows = await self._pool.fetch('SELECT DISTINCT "group" FROM users')
        groups.update(r["group"] for r in rows)
        return admin_pb2.Names(names=sorted(groups))

    async def GetStatus(self, request: Empty, context: Context) -> Any:
        return await self._public(context, self._status, request)

    async def _status(self, _: Empty) -> admin_pb2.SystemStatus:
        return admin_pb2.SystemStatus(
            version=self._version,
            start_time=self._started,
            register_enabled=(await self._option("RegisterEnabled") or "").lower() == "true",
            quota_per_unit=QUOTA_PER_USD,
            system_name=await self._option("SystemName") or "unigate",
        )
