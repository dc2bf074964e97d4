"""Administrative writes (channels, tokens, top-ups) used by the CLI and, later, the
management API. Each change is broadcast so every service sees it at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import orjson
from argon2 import PasswordHasher

from unigate.channel_types import channel_type
from unigate.crypto import encrypt_secret
from unigate.keys import display_prefix, generate_api_key, hash_api_key


class AdminError(ValueError):
    """A request the admin tools refuse, with a message for the operator."""


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    key: str  # shown once, never stored


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
) -> int:
    if channel_type(type) is None:
        raise AdminError(f"unknown channel type {type}")
    model_list = _split(models)
    if not model_list:
        raise AdminError("a channel needs at least one model")
    groups = _split(group) or ["default"]
    async with _connection(conn) as c, c.transaction():
        channel_id: int = await c.fetchval(
            'INSERT INTO channels (type, name, key_enc, base_url, models, model_mapping, "group",'
            " priority, weight, config) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9,"
            " $10::jsonb) RETURNING id",
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
