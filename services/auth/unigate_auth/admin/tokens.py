"""API keys (One API's tokens). A user sees only its own keys; an admin also those of the
users below it; a key of someone else reads as not found. The key itself is shown once,
when it is created; reads show its display prefix and a mask."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

import asyncpg

from unigate.keys import display_prefix, generate_api_key, hash_api_key
from unigate.v1 import admin_pb2
from unigate_auth.admin import records
from unigate_auth.admin.quota_rpcs import adjust_quota
from unigate_auth.admin.records import TOKEN_COLUMNS, fetch_page, like, page_of
from unigate_auth.admin.rpc import (
    AdminBase,
    Empty,
    check_name,
    check_status,
    denied,
    invalid,
    not_found,
    rpc,
)
from unigate_auth.admin.sessions import ROLE_USER, Caller
from unigate_auth.admin.users import target_user
from unigate_auth.lists import split_list


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    key: str  # shown once, never stored


async def create_token(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    user_id: int,
    name: str,
    remain_quota: int = 0,
    unlimited_quota: bool = False,
    expired_time: int = -1,
    models: str = "",
    subnet: str = "",
) -> NewToken:
    """Insert a key for ``user_id``; only its hash and display prefix are stored."""
    key = generate_api_key()
    token_id: int = await db.fetchval(
        "INSERT INTO tokens (user_id, key_hash, key_prefix, name, remain_quota,"
        " unlimited_quota, expired_time, models, subnet, created_time)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        user_id,
        hash_api_key(key),
        display_prefix(key),
        name,
        remain_quota,
        unlimited_quota,
        expired_time,
        ",".join(split_list(models)),
        ",".join(split_list(subnet)),
        int(time.time()),
    )
    return NewToken(id=token_id, key=key)


def checked_subnets(text: str) -> str:
    for part in split_list(text):
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise invalid(f"{part!r} is not an IP network (CIDR)") from None
    return text


class TokenRpcs(AdminBase):
    async def _owner_for(self, caller: Caller, user_id: int) -> int:
        """Whose keys a call may list or create: the caller's own, or (admin) a user's below."""
        if user_id in (0, caller.id):
            return caller.id
        if not caller.is_admin:
            raise denied("you may manage only your own keys")
        await target_user(self._pool, caller, "id = $1", user_id)
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
            raise not_found("token")
        return row

    @rpc(ROLE_USER)
    async def ListTokens(self, caller: Caller, req: admin_pb2.ListRequest) -> admin_pb2.TokenList:
        owner = await self._owner_for(caller, req.user_id)
        limit, offset = page_of(req.page, req.size)
        where, args = "WHERE user_id = $1", list[object]([owner])
        if req.keyword:
            where += " AND name ILIKE $2"
            args.append(like(req.keyword))
        total, rows = await fetch_page(
            self._pool, "tokens", TOKEN_COLUMNS, where, args, "id DESC", limit, offset
        )
        return admin_pb2.TokenList(tokens=[records.token_message(r) for r in rows], total=total)

    @rpc(ROLE_USER)
    async def GetToken(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.Token:
        return records.token_message(await self._owned_token(caller, req.id))

    @rpc(ROLE_USER)
    async def CreateToken(self, caller: Caller, req: admin_pb2.TokenInput) -> admin_pb2.Token:
        owner = await self._owner_for(caller, req.user_id)
        if req.remain_quota < 0:
            raise invalid("remain_quota cannot be negative")
        created = await create_token(
            self._pool,
            user_id=owner,
            name=check_name(req.name, "token"),
            remain_quota=req.remain_quota,
            unlimited_quota=req.unlimited_quota,
            expired_time=req.expired_time if req.HasField("expired_time") else -1,
            models=req.models,
            subnet=checked_subnets(req.subnet),
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

    @rpc(ROLE_USER)
    async def UpdateToken(self, caller: Caller, req: admin_pb2.TokenInput) -> admin_pb2.Token:
        row = await self._owned_token(caller, req.id)
        sets: dict[str, object] = {}
        if req.HasField("name"):
            sets["name"] = check_name(req.name, "token")
        if req.HasField("status"):
            sets["status"] = check_status(req.status, "token")
        if req.HasField("expired_time"):
            sets["expired_time"] = req.expired_time
        if req.HasField("unlimited_quota"):
            sets["unlimited_quota"] = req.unlimited_quota
        if req.HasField("models"):
            sets["models"] = ",".join(split_list(req.models))
        if req.HasField("subnet"):
            sets["subnet"] = ",".join(split_list(checked_subnets(req.subnet)))
        for field in ("rpm_limit", "tpm_limit"):
            if req.HasField(field):
                sets[field] = max(getattr(req, field), 0)
        if sets:
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            await self._pool.execute(
                f"UPDATE tokens SET {columns} WHERE id = $1", req.id, *sets.values()
            )
        if req.HasField("remain_quota") and req.remain_quota != row["remain_quota"]:
            await adjust_quota(
                self._pool,
                target="token",
                target_id=req.id,
                actor_id=caller.id,
                set_to=req.remain_quota,
                quota=self._quota,
            )
        await self._broadcast("token", [req.id])
        return records.token_message(await self._owned_token(caller, req.id))

    @rpc(ROLE_USER)
    async def DeleteToken(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        await self._owned_token(caller, req.id)
        await self._pool.execute("DELETE FROM tokens WHERE id = $1", req.id)
        await self._broadcast("token", [req.id])
        return Empty()
