"""Postgres reads of the auth service (the config of record)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import asyncpg
import orjson

from unigate.channel_types import routed_type
from unigate.quota import Balances, Snapshot
from unigate_auth.routing import Ability

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    user_id: int
    name: str
    status: int
    expired_time: int
    unlimited_quota: bool
    models: frozenset[str]
    subnets: tuple[IPNetwork, ...]
    user_status: int
    group: str
    rpm_limit: int
    tpm_limit: int
    user_rpm_limit: int
    user_tpm_limit: int


@dataclass(frozen=True, slots=True)
class ChannelUnderTest:
    id: int
    type: int
    model: str
    upstream_model: str
    config_version: int


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    id: int
    type: int
    name: str
    base_url: str
    key_enc: bytes
    config_json: str
    headers_json: str
    timeout_ms: int
    config_version: int
    system_prompt: str


def parse_subnets(text: str) -> tuple[IPNetwork, ...]:
    nets = []
    for part in text.split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


def parse_list(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


class AuthStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def token_by_hash(self, key_hash: bytes) -> TokenRecord | None:
        row = await self._pool.fetchrow(
            "SELECT t.id, t.user_id, t.name, t.status, t.expired_time, t.unlimited_quota,"
            ' t.models, t.subnet, t.rpm_limit, t.tpm_limit, u.status AS user_status, u."group",'
            " u.rpm_limit AS user_rpm_limit, u.tpm_limit AS user_tpm_limit"
            " FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.key_hash = $1",
            key_hash,
        )
        if row is None:
            return None
        return TokenRecord(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            status=row["status"],
            expired_time=row["expired_time"],
            unlimited_quota=row["unlimited_quota"],
            models=parse_list(row["models"]),
            subnets=parse_subnets(row["subnet"]),
            user_status=row["user_status"],
            group=row["group"],
            rpm_limit=row["rpm_limit"],
            tpm_limit=row["tpm_limit"],
            user_rpm_limit=row["user_rpm_limit"],
            user_tpm_limit=row["user_tpm_limit"],
        )

    async def balances(self, token_id: int) -> Balances | None:
        """The token's and its user's balances as recorded in Postgres, with the snapshot
        they were read under (the statement's own), so that a load into Redis can tell which
        charges settled meanwhile the read saw."""
        row = await self._pool.fetchrow(
            "SELECT t.remain_quota, t.user_id, u.quota,"
            " pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax,"
            " ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x) AS running"
            " FROM tokens t JOIN users u ON u.id = t.user_id, pg_current_snapshot() s"
            " WHERE t.id = $1",
            token_id,
        )
        if row is None:
            return None
        return Balances(
            token_id=token_id,
            token_balance=row["remain_quota"],
            user_id=row["user_id"],
            user_balance=row["quota"],
            snapshot=Snapshot(row["xmin"], row["xmax"], tuple(row["running"])),
        )

    async def abilities(self, group: str, model: str) -> list[Ability]:
        rows = await self._pool.fetch(
            "SELECT a.channel_id, a.priority, a.weight, c.type, c.model_mapping, c.config_version,"
            " c.config->>'protocol' AS protocol"
            " FROM abilities a JOIN channels c ON c.id = a.channel_id"
            ' WHERE a."group" = $1 AND a.model = $2 AND a.enabled AND c.status = 1',
            group,
            model,
        )
        out = []
        for r in rows:
            mapping = orjson.loads(r["model_mapping"]) if r["model_mapping"] else {}
            out.append(
                Ability(
                    channel_id=r["channel_id"],
                    channel_type=routed_type(r["type"], r["protocol"]),
                    priority=r["priority"],
                    weight=r["weight"],
                    upstream_model=str(mapping.get(model) or model),
                    config_version=r["config_version"],
                )
            )
        return out

    async def models_for_group(self, group: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT a.model FROM abilities a JOIN channels c ON c.id = a.channel_id"
            ' WHERE a."group" = $1 AND a.enabled AND c.status = 1 ORDER BY a.model',
            group,
        )
        return [r["model"] for r in rows]

    async def channel(self, channel_id: int) -> ChannelRecord | None:
        r = await self._pool.fetchrow(
            "SELECT id, type, name, base_url, key_enc, config::text AS config_json,"
            " headers::text AS headers_json, timeout_ms, config_version, system_prompt"
            " FROM channels WHERE id = $1",
            channel_id,
        )
        if r is None:
            return None
        return ChannelRecord(**dict(r))

    async def options(self) -> dict[str, str]:
        return {
            r["key"]: r["value"] for r in await self._pool.fetch("SELECT key, value FROM options")
        }

    async def touch_tokens(self, token_ids: list[int], now: int) -> None:
        await self._pool.execute(
            "UPDATE tokens SET accessed_time = $2 WHERE id = ANY($1::bigint[])", token_ids, now
        )

    async def disable_channel(self, channel_id: int, reason: str, now: int) -> bool:
        """Auto-disable (status 3) an enabled channel; False if it was not enabled."""
        async with self._pool.acquire() as conn, conn.transaction():
            name = await conn.fetchval(
                "UPDATE channels SET status = 3, status_reason = $2, status_time = $3,"
                " config_version = config_version + 1 WHERE id = $1 AND status = 1"
                " RETURNING name",
                channel_id,
                reason[:500],
                now,
            )
            if name is None:
                return False
            await conn.execute(
                "UPDATE abilities SET enabled = FALSE WHERE channel_id = $1", channel_id
            )
            await conn.execute(
                "INSERT INTO logs (type, created_at, channel_id, content) VALUES (4, $1, $2, $3)",
                now,
                channel_id,
                f"channel #{channel_id} ({name}) disabled automatically: {reason}",
            )
        return True

    async def enable_channel(self, channel_id: int, response_ms: int, now: int) -> bool:
        """Re-enable an auto-disabled channel whose test passed."""
        async with self._pool.acquire() as conn, conn.transaction():
            name = await conn.fetchval(
                "UPDATE channels SET status = 1, status_reason = '', status_time = $2,"
                " test_time = $2, response_time = $3, config_version = config_version + 1"
                " WHERE id = $1 AND status = 3 RETURNING name",
                channel_id,
                now,
                response_ms,
            )
            if name is None:
                return False
            await conn.execute(
                "UPDATE abilities SET enabled = TRUE WHERE channel_id = $1", channel_id
            )
            await conn.execute(
                "INSERT INTO logs (type, created_at, channel_id, content) VALUES (4, $1, $2, $3)",
                now,
                channel_id,
                f"channel #{channel_id} ({name}) re-enabled: test passed",
            )
        return True

    async def record_test(self, channel_id: int, response_ms: int, now: int) -> None:
        await self._pool.execute(
            "UPDATE channels SET test_time = $2, response_time = $3 WHERE id = $1",
            channel_id,
            now,
            response_ms,
        )

    async def auto_disabled_channels(self) -> list[ChannelUnderTest]:
        rows = await self._pool.fetch(
            "SELECT id, type, models, model_mapping, config_version,"
            " config->>'protocol' AS protocol FROM channels"
            " WHERE status = 3 ORDER BY id"
        )
        out = []
        for r in rows:
            models = [m for m in parse_list(r["models"])]
            if not models:
                continue
            model = sorted(models)[0]
            mapping = orjson.loads(r["model_mapping"]) if r["model_mapping"] else {}
            out.append(
                ChannelUnderTest(
                    id=r["id"],
                    type=routed_type(r["type"], r["protocol"]),
                    model=model,
                    upstream_model=str(mapping.get(model) or model),
                    config_version=r["config_version"],
                )
            )
        return out

    async def key_info(self, token_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT t.unlimited_quota, t.remain_quota, t.used_quota, t.expired_time,"
            " u.quota AS user_quota, u.used_quota AS user_used_quota"
            " FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
            token_id,
        )
