"""Postgres reads of the auth service (the config of record): keys, balances, options.
Channels and abilities are ``unigate_auth.admin.channels``' (``AuthStore.channels``), stored
Responses API responses ``unigate_auth.stored_responses``' (``AuthStore.responses``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import asyncpg

from unigate.quota import Balances, Snapshot
from unigate_auth.admin.channels import ChannelTable
from unigate_auth.lists import split_list
from unigate_auth.stored_responses import StoredResponses

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


def parse_subnets(text: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(part, strict=False) for part in split_list(text))


class AuthStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Channel reads and writes have their own home, shared with the admin RPCs.
        self.channels = ChannelTable(pool)
        # The Responses API's stored responses, read and deleted by their owner only.
        self.responses = StoredResponses(pool)

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
            models=frozenset(split_list(row["models"])),
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

    async def token_owners(self, token_ids: list[int]) -> list[tuple[int, int]]:
        """(token id, its user's id) of those of ``token_ids`` that exist: a token's cached
        balance is kept under its user's hash tag."""
        rows = await self._pool.fetch(
            "SELECT id, user_id FROM tokens WHERE id = ANY($1::bigint[])", token_ids
        )
        return [(r["id"], r["user_id"]) for r in rows]

    async def options(self) -> dict[str, str]:
        return {
            r["key"]: r["value"] for r in await self._pool.fetch("SELECT key, value FROM options")
        }

    async def root_emails(self) -> list[str]:
        """Where operator notifications are mailed: the enabled root users' addresses."""
        rows = await self._pool.fetch(
            "SELECT email FROM users WHERE role >= 100 AND status = 1 AND email <> '' ORDER BY id"
        )
        return [r["email"] for r in rows]

    async def touch_tokens(self, token_ids: list[int], now: int) -> None:
        await self._pool.execute(
            "UPDATE tokens SET accessed_time = $2 WHERE id = ANY($1::bigint[])", token_ids, now
        )

    async def user_role(self, user_id: int) -> int:
        role: int | None = await self._pool.fetchval(
            "SELECT role FROM users WHERE id = $1", user_id
        )
        return role or 0

    async def key_info(self, token_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT t.unlimited_quota, t.remain_quota, t.used_quota, t.expired_time,"
            " u.quota AS user_quota, u.used_quota AS user_used_quota"
            " FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
            token_id,
        )
