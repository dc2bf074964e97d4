"""Users: logging in and out, registration, the caller's own account, and the management
of users by admins.

The role rules are One API's (``controller/user.go``): an admin acts only on users below
it, root on everyone; only root promotes or demotes; root itself is never disabled, demoted
or deleted. A new password (own or reset) ends the user's other sessions and access token.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc

from unigate.v1 import admin_pb2
from unigate_auth.admin import records
from unigate_auth.admin.quota_rpcs import adjust_quota
from unigate_auth.admin.records import USER_COLUMNS, fetch_page, like, page_of
from unigate_auth.admin.rpc import (
    AdminBase,
    Empty,
    Failure,
    check_name,
    check_password,
    check_username,
    denied,
    invalid,
    not_found,
    public,
    rpc,
)
from unigate_auth.admin.sessions import (
    MIN_PASSWORD_LENGTH,
    ROLE_ADMIN,
    ROLE_ROOT,
    ROLE_USER,
    STATUS_DISABLED,
    STATUS_ENABLED,
    Caller,
    hash_access_token,
    hash_password,
    new_access_token,
    verify_password,
)


async def create_user(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    username: str,
    password: str,
    group: str = "default",
    quota: int = 0,
    role: int = ROLE_USER,
    status: int = STATUS_ENABLED,
    rpm_limit: int = 0,
    tpm_limit: int = 0,
) -> int:
    """Insert a user (its display name is its username); a ValueError if the password is
    too short or the name is taken."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        user_id: int = await db.fetchval(
            'INSERT INTO users (username, password_hash, display_name, "group", quota, role,'
            " status, rpm_limit, tpm_limit) VALUES ($1, $2, $1, $3, $4, $5, $6, $7, $8)"
            " RETURNING id",
            username,
            await hash_password(password),
            group,
            quota,
            role,
            status,
            rpm_limit,
            tpm_limit,
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"a user named {username!r} already exists") from None
    return user_id


async def user_message_of(pool: asyncpg.Pool, user_id: int) -> admin_pb2.User:
    row = await pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise not_found("user")
    return records.user_message(row)


async def target_user(
    pool: asyncpg.Pool, caller: Caller, where: str, value: object
) -> asyncpg.Record:
    """The user a caller acts on (``where`` is this module's own condition), if it ranks
    below the caller."""
    row = await pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE {where}", value)
    if row is None:
        raise not_found("user")
    if not caller.outranks(row["role"]):
        raise denied("you may act only on users below your own role")
    return row


class UserRpcs(AdminBase):
    async def _user(self, user_id: int) -> admin_pb2.User:
        return await user_message_of(self._pool, user_id)

    async def _username_free(self, username: str, user_id: int = 0) -> None:
        """Usernames differ by more than case ("Root" is root): ALREADY_EXISTS otherwise."""
        check_username(username)
        taken = await self._pool.fetchval(
            "SELECT 1 FROM users WHERE lower(username) = lower($1) AND id <> $2",
            username,
            user_id,
        )
        if taken:
            raise Failure(grpc.StatusCode.ALREADY_EXISTS, "that username is taken")

    async def _set_contact(self, user_id: int, display_name: str, email: str) -> None:
        await self._pool.execute(
            "UPDATE users SET display_name = $2, email = $3 WHERE id = $1",
            user_id,
            display_name,
            email,
        )

    async def _set_quota(self, caller: Caller, user_id: int, quota: int) -> None:
        await adjust_quota(
            self._pool,
            target="user",
            target_id=user_id,
            actor_id=caller.id,
            set_to=quota,
            quota=self._quota,
        )

    # ---- sessions and the caller's own account ------------------------------------------
    @public
    async def Login(self, req: admin_pb2.LoginRequest) -> admin_pb2.LoginResponse:
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
            raise denied("this user is disabled")
        await self._throttle.succeeded(req.username, req.client_ip)
        session_id = await self._sessions.create(row["id"])
        return admin_pb2.LoginResponse(
            user=records.user_message(row),
            session_id=session_id,
            require_password_change=row["must_change_password"],
        )

    @rpc(ROLE_USER, before_password_change=True)
    async def Logout(self, caller: Caller, _: Empty) -> Empty:
        if caller.session_id:
            await self._sessions.end(caller.session_id, caller.id)
        return Empty()

    @rpc(ROLE_USER, before_password_change=True)
    async def GetSelf(self, caller: Caller, _: Empty) -> admin_pb2.User:
        return await self._user(caller.id)

    @rpc(ROLE_USER, before_password_change=True)
    async def UpdateSelf(self, caller: Caller, req: admin_pb2.UpdateSelfRequest) -> admin_pb2.User:
        if caller.must_change_password and not req.HasField("password"):
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, "the default password must be changed first"
            )
        if req.HasField("password"):
            current = await self._pool.fetchval(
                "SELECT password_hash FROM users WHERE id = $1", caller.id
            )
            # An account made by an external login has no password (an empty hash) until its
            # owner sets one: there is no current one to give.
            if current and not await verify_password(current, req.original_password):
                raise denied("the original password is wrong")
            check_password(req.password)
            if req.password == req.original_password:
                raise invalid("the new password must differ from the current one")
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
                check_name(req.display_name, "display"),
            )
        if req.HasField("email"):
            await self._pool.execute(
                "UPDATE users SET email = $2 WHERE id = $1", caller.id, req.email.strip()
            )
        return await self._user(caller.id)

    @rpc(ROLE_USER)
    async def NewAccessToken(self, caller: Caller, _: Empty) -> admin_pb2.AccessToken:
        token = new_access_token()
        await self._pool.execute(
            "UPDATE users SET access_token_hash = $2 WHERE id = $1",
            caller.id,
            hash_access_token(token),
        )
        return admin_pb2.AccessToken(access_token=token)

    # ---- users --------------------------------------------------------------------------
    @rpc(ROLE_ADMIN)
    async def ListUsers(self, caller: Caller, req: admin_pb2.ListRequest) -> admin_pb2.UserList:
        limit, offset = page_of(req.page, req.size)
        where, args = "", list[object]()
        if req.keyword:
            where = (
                "WHERE username ILIKE $1 OR display_name ILIKE $1 OR email ILIKE $1"
                " OR id::text = $2"
            )
            args = [like(req.keyword), req.keyword]
        total, rows = await fetch_page(
            self._pool, "users", USER_COLUMNS, where, args, "id DESC", limit, offset
        )
        return admin_pb2.UserList(users=[records.user_message(r) for r in rows], total=total)

    @rpc(ROLE_ADMIN)
    async def GetUser(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.User:
        if req.id == caller.id:
            return await self._user(caller.id)
        return records.user_message(await target_user(self._pool, caller, "id = $1", req.id))

    @rpc(ROLE_ADMIN)
    async def CreateUser(self, caller: Caller, req: admin_pb2.UserInput) -> admin_pb2.User:
        await self._username_free(req.username)
        check_password(req.password)
        user_id = await create_user(
            self._pool,
            username=req.username,
            password=req.password,
            group=req.group if req.HasField("group") and req.group else "default",
            rpm_limit=req.rpm_limit,
            tpm_limit=req.tpm_limit,
        )
        await self._set_contact(user_id, req.display_name or req.username, req.email)
        if req.quota:
            await self._set_quota(caller, user_id, req.quota)
        return await self._user(user_id)

    @rpc(ROLE_ADMIN)
    async def UpdateUser(self, caller: Caller, req: admin_pb2.UserInput) -> admin_pb2.User:
        row = await target_user(self._pool, caller, "id = $1", req.id)
        sets: dict[str, object] = {}
        if req.HasField("username"):
            await self._username_free(req.username, req.id)
            sets["username"] = req.username
        if req.HasField("display_name"):
            sets["display_name"] = check_name(req.display_name, "display")
        if req.HasField("email"):
            sets["email"] = req.email.strip()
        if req.HasField("group"):
            sets['"group"'] = check_name(req.group, "group")
        for field in ("rpm_limit", "tpm_limit"):
            if req.HasField(field):
                if getattr(req, field) < 0:
                    raise invalid(f"{field} cannot be negative")
                sets[field] = getattr(req, field)
        if req.HasField("password"):
            check_password(req.password)
            sets["password_hash"] = await hash_password(req.password)
            sets["access_token_hash"] = None  # a reset ends the access token too
        if sets:
            sets["updated_time"] = int(time.time())
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            await self._pool.execute(
                f"UPDATE users SET {columns} WHERE id = $1", req.id, *sets.values()
            )
        if req.HasField("quota") and req.quota != row["quota"]:
            await self._set_quota(caller, req.id, req.quota)
        if req.HasField("password"):
            await self._sessions.end_all(req.id)
        await self._broadcast("user", [req.id])
        return await self._user(req.id)

    @rpc(ROLE_ADMIN)
    async def DeleteUser(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        row = await target_user(self._pool, caller, "id = $1", req.id)
        await self._remove_user(row)
        return Empty()

    async def _remove_user(self, row: asyncpg.Record) -> None:
        if row["role"] >= ROLE_ROOT:
            raise denied("the root user cannot be deleted")
        await self._pool.execute("DELETE FROM users WHERE id = $1", row["id"])
        await self._sessions.end_all(row["id"])
        await self._broadcast("user", [row["id"]])

    @rpc(ROLE_ADMIN)
    async def ManageUser(self, caller: Caller, req: admin_pb2.ManageUserRequest) -> admin_pb2.User:
        row = await target_user(self._pool, caller, "username = $1", req.username)
        user_id, role = row["id"], row["role"]
        if req.action == "delete":
            await self._remove_user(row)
            return records.user_message(row)
        if req.action in ("promote", "demote") and not caller.is_root:
            raise denied("only root promotes or demotes")
        if req.action == "promote":
            if role != ROLE_USER:
                raise invalid("only a common user can be promoted (to admin)")
            await self._pool.execute(
                "UPDATE users SET role = $2 WHERE id = $1", user_id, ROLE_ADMIN
            )
        elif req.action == "demote":
            if role != ROLE_ADMIN:
                raise invalid("only an admin can be demoted")
            await self._set_user(user_id, "role", ROLE_USER)
        elif req.action in ("enable", "disable"):
            if role >= ROLE_ROOT:
                raise denied("the root user cannot be disabled")
            status = STATUS_ENABLED if req.action == "enable" else STATUS_DISABLED
            await self._set_user(user_id, "status", status)
            if status == STATUS_DISABLED:
                await self._sessions.end_all(user_id)
        else:
            raise invalid("action is one of enable, disable, promote, demote, delete")
        await self._broadcast("user", [user_id])
        return await self._user(user_id)

    async def _set_user(self, user_id: int, column: str, value: int) -> None:
        await self._pool.execute(
            f"UPDATE users SET {column} = $2, updated_time = $3 WHERE id = $1",
            user_id,
            value,
            int(time.time()),
        )
