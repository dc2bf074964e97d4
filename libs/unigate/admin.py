"""Administrative writes (channels, tokens, top-ups) used by the CLI and, later, the
management API. Each change is broadcast so every service sees it at once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import asyncpg
import orjson
from argon2 import PasswordHasher

from unigate.channel_types import channel_type, speaks_websocket
from unigate.crypto import encrypt_secret
from unigate.keys import display_prefix, generate_api_key, hash_api_key
from unigate.quota import QuotaStore
from unigate.urls import base_url_problem

log = logging.getLogger(__name__)

LOG_TYPE_MANAGE = 3


class AdminError(ValueError):
    """A request the admin tools refuse, with a message for the operator."""


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    key: str  # shown once, never stored


@dataclass(frozen=True, slots=True)
class QuotaChange:
    before: int
    after: int
    log_id: int  # the type-3 (manage) ledger row recording it

    @property
    def delta(self) -> int:
        return self.after - self.before


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


async def create_channel(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    secret_key: str,
    type: int,
    name: str,
    key: str,
    models: str,
    base_url: str = "",
    group: str = "default",
    priority: int = 0,
    weight: int = 1,
    model_mapping: dict[str, str] | None = None,
    config: dict[str, object] | None = None,
    system_prompt: str = "",
) -> int:
    if channel_type(type) is None:
        raise AdminError(f"unknown channel type {type}")
    if problem := base_url_problem(base_url, websocket=speaks_websocket(type)):
        raise AdminError(problem)
    model_list = _split(models)
    if not model_list:
        raise AdminError("a channel needs at least one model")
    groups = _split(group) or ["default"]
    async with _connection(conn) as c, c.transaction():
        channel_id: int = await c.fetchval(
            'INSERT INTO channels (type, name, key_enc, base_url, models, model_mapping, "group",'
            " priority, weight, config, system_prompt) VALUES ($1, $2, $3, $4, $5, $6::jsonb,"
            " $7, $8, $9, $10::jsonb, $11) RETURNING id",
            type,
            name,
            encrypt_secret(key, secret_key),
            base_url,
            ",".join(model_list),
            orjson.dumps(model_mapping or {}).decode(),
            ",".join(groups),
            priority,
            weight,
            orjson.dumps(config or {}).decode(),
            system_prompt,
        )
        await c.executemany(
            'INSERT INTO abilities ("group", model, channel_id, enabled, priority, weight)'
            " VALUES ($1, $2, $3, TRUE, $4, $5)",
            [(g, m, channel_id, priority, weight) for g in groups for m in model_list],
        )
    return channel_id


async def create_token(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    user_id: int,
    name: str,
    remain_quota: int = 0,
    unlimited_quota: bool = False,
    expired_time: int = -1,
    models: str = "",
    subnet: str = "",
) -> NewToken:
    key = generate_api_key()
    async with _connection(conn) as c:
        token_id: int = await c.fetchval(
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
            ",".join(_split(models)),
            ",".join(_split(subnet)),
            int(time.time()),
        )
    return NewToken(id=token_id, key=key)


async def create_user(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    username: str,
    password: str,
    group: str = "default",
    quota: int = 0,
    role: int = 1,
    status: int = 1,
    rpm_limit: int = 0,
    tpm_limit: int = 0,
) -> int:
    if len(password) < 8:
        raise AdminError("a password needs at least 8 characters")
    async with _connection(conn) as c:
        try:
            user_id: int = await c.fetchval(
                'INSERT INTO users (username, password_hash, display_name, "group", quota, role,'
                " status, rpm_limit, tpm_limit) VALUES ($1, $2, $1, $3, $4, $5, $6, $7, $8)"
                " RETURNING id",
                username,
                PasswordHasher().hash(password),
                group,
                quota,
                role,
                status,
                rpm_limit,
                tpm_limit,
            )
        except asyncpg.UniqueViolationError:
            raise AdminError(f"a user named {username!r} already exists") from None
    return user_id


async def user_id_by_name(conn: asyncpg.Connection | asyncpg.Pool, username: str) -> int:
    async with _connection(conn) as c:
        user_id = await c.fetchval("SELECT id FROM users WHERE username = $1", username)
    if user_id is None:
        raise AdminError(f"no user named {username!r}")
    return int(user_id)


async def adjust_quota(
    pool: asyncpg.Pool,
    *,
    target: Literal["user", "token"],
    target_id: int,
    actor_id: int,
    add: int | None = None,
    set_to: int | None = None,
    quota: QuotaStore | None,
) -> QuotaChange:
    """Add to (``add``, may be negative) or set (``set_to``) a user's quota or a token's
    remaining quota, and write a manage row saying who changed what by how much.

    The balance and its ledger row are written in one transaction, under a row lock, so the
    row's before/after are exact even while billing charges the same balance. Afterwards the
    cached balance in Redis is dropped, as ``redeem`` does and for the same reason: the next
    request reloads it from Postgres, instead of being judged against the old one for minutes.
    ``quota`` is required so that no caller forgets that; ``None`` only where nothing caches.
    """
    if (add is None) == (set_to is None):
        raise AdminError("give exactly one of add or set")
    if set_to is not None and set_to < 0:
        raise AdminError("a quota cannot be set below 0")
    if add == 0:
        raise AdminError("adding 0 changes nothing")
    now = int(time.time())
    async with pool.acquire() as conn, conn.transaction():
        actor = await conn.fetchval("SELECT username FROM users WHERE id = $1", actor_id)
        if actor is None:
            raise AdminError(f"no user with id {actor_id}")
        if target == "user":
            row = await conn.fetchrow(
                "SELECT id AS user_id, username, 0::bigint AS token_id, '' AS token_name,"
                " quota AS balance FROM users WHERE id = $1 FOR UPDATE",
                target_id,
            )
        else:
            row = await conn.fetchrow(
                "SELECT t.user_id, u.username, t.id AS token_id, t.name AS token_name,"
                " t.remain_quota AS balance FROM tokens t JOIN users u ON u.id = t.user_id"
                " WHERE t.id = $1 FOR UPDATE OF t",
                target_id,
            )
        if row is None:
            raise AdminError(f"no {target} with id {target_id}")
        before = int(row["balance"])
        after = before + add if add is not None else int(set_to or 0)
        if after < 0:
            raise AdminError(f"the {target}'s quota would become negative ({after})")
        if target == "user":
            await conn.execute(
                "UPDATE users SET quota = $2, updated_time = $3 WHERE id = $1",
                target_id,
                after,
                now,
            )
        else:
            await conn.execute(
                "UPDATE tokens SET remain_quota = $2 WHERE id = $1", target_id, after
            )
        what = (
            f"user {row['username']!r} (#{row['user_id']})"
            if target == "user"
            else f"token {row['token_name']!r} (#{row['token_id']}) of user {row['username']!r}"
        )
        log_id: int = await conn.fetchval(
            "INSERT INTO logs (type, created_at, user_id, username, token_id, token_name, quota,"
            " content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            LOG_TYPE_MANAGE,
            now,
            row["user_id"],
            row["username"],
            row["token_id"],
            row["token_name"],
            after - before,
            f"{actor!r} (#{actor_id}) {'added' if add is not None else 'set'} quota of {what}:"
            f" {before} -> {after} ({after - before:+d})",
        )
    if quota is not None:
        try:
            await quota.forget_balances(
                token_ids=[target_id] if target == "token" else [],
                user_ids=[target_id] if target == "user" else [],
            )
        except Exception:
            # Committed, so not a failure; the stale cached balance expires on its own.
            log.exception("quota changed, but could not drop the cached balance")
    return QuotaChange(before=before, after=after, log_id=log_id)


class _connection:
    """Use a pool or a single connection the same way."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn
        self._acquired: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        if isinstance(self._conn, asyncpg.Pool):
            self._acquired = await self._conn.acquire()
            return self._acquired
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._acquired is not None and isinstance(self._conn, asyncpg.Pool):
            await self._conn.release(self._acquired)
