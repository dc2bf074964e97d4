"""The channel table of auth: every read and write of ``channels`` and ``abilities`` that auth
makes — routing's reads, the admin RPCs' writes, the relay's auto-disable and the channel
tester's re-enable — so that a channel column has one home in this service.

Abilities are derived from the channel (One API's rule): they are written with a new
channel and rebuilt on every change. A change that routing or relays must see bumps
``config_version`` (relays refetch the channel); the caller broadcasts it on NATS.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import orjson

from unigate.channel_types import channel_type, routed_type, speaks_websocket
from unigate.crypto import encrypt_secret
from unigate.routing import Ability
from unigate.urls import base_url_problem
from unigate_auth.admin.records import CHANNEL_COLUMNS, fetch_page, like
from unigate_auth.admin.sessions import STATUS_ENABLED
from unigate_auth.lists import split_list

LOG_TYPE_SYSTEM = 4  # logs.type of auto-disable and re-enable rows


@dataclass(frozen=True, slots=True)
class ChannelUnderTest:
    id: int
    type: int
    model: str
    upstream_model: str
    config_version: int
    name: str = ""


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
    key_status_json: str = "{}"

    def disabled_keys(self) -> set[str]:
        """Fingerprints of the keys taken out of rotation."""
        states = orjson.loads(self.key_status_json or "{}")
        return {fp for fp, st in states.items() if st.get("status") != STATUS_ENABLED}


def _upstream_model(model_mapping: str | None, model: str) -> str:
    mapping = orjson.loads(model_mapping) if model_mapping else {}
    return str(mapping.get(model) or model)


class ChannelTable:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ---- routing and relay reads ---------------------------------------------------------
    async def abilities(self, group: str, model: str) -> list[Ability]:
        rows = await self._pool.fetch(
            "SELECT a.channel_id, a.priority, a.weight, c.type, c.model_mapping, c.config_version,"
            " c.config->>'protocol' AS protocol"
            " FROM abilities a JOIN channels c ON c.id = a.channel_id"
            ' WHERE a."group" = $1 AND a.model = $2 AND a.enabled AND c.status = 1',
            group,
            model,
        )
        return [
            Ability(
                channel_id=r["channel_id"],
                channel_type=routed_type(r["type"], r["protocol"]),
                priority=r["priority"],
                weight=r["weight"],
                upstream_model=_upstream_model(r["model_mapping"], model),
                config_version=r["config_version"],
            )
            for r in rows
        ]

    async def models_for_group(self, group: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT a.model FROM abilities a JOIN channels c ON c.id = a.channel_id"
            ' WHERE a."group" = $1 AND a.enabled AND c.status = 1 ORDER BY a.model',
            group,
        )
        return [r["model"] for r in rows]

    async def config(self, channel_id: int) -> ChannelRecord | None:
        """What a relay needs to call the channel's provider."""
        r = await self._pool.fetchrow(
            "SELECT id, type, name, base_url, key_enc, config::text AS config_json,"
            " headers::text AS headers_json, timeout_ms, config_version, system_prompt,"
            " key_status::text AS key_status_json FROM channels WHERE id = $1",
            channel_id,
        )
        return None if r is None else ChannelRecord(**dict(r))

    # ---- admin reads ---------------------------------------------------------------------
    async def row(self, channel_id: int) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._pool.fetchrow(
            f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1", channel_id
        )
        return row

    async def page(
        self, keyword: str, order: str, limit: int, offset: int
    ) -> tuple[int, list[asyncpg.Record]]:
        """(total, rows) of the channels matching ``keyword``; ``order`` is an ORDER BY
        chosen from a fixed table, never the request's text."""
        where, args = "", list[object]()
        if keyword:
            where = "WHERE name ILIKE $1 OR models ILIKE $1 OR id::text = $2"
            args = [like(keyword), keyword]
        return await fetch_page(
            self._pool, "channels", CHANNEL_COLUMNS, where, args, order, limit, offset
        )

    async def ids(self, types: list[int] | None = None) -> list[int]:
        """Every channel's id, or those of the given types, in id order."""
        if types is None:
            rows = await self._pool.fetch("SELECT id FROM channels ORDER BY id")
        else:
            rows = await self._pool.fetch(
                "SELECT id FROM channels WHERE type = ANY($1::int[]) ORDER BY id", types
            )
        return [r["id"] for r in rows]

    async def models_by_type(self) -> dict[int, set[str]]:
        by_type: dict[int, set[str]] = {}
        for r in await self._pool.fetch("SELECT type, models FROM channels"):
            by_type.setdefault(r["type"], set()).update(split_list(r["models"]))
        return by_type

    # ---- admin writes --------------------------------------------------------------------
    async def create(
        self,
        *,
        secret_key: str,
        type: int,
        name: str,
        key: str,
        models: str,
        base_url: str,
        group: str,
        priority: int,
        weight: int,
        model_mapping: str,
        config: str,
        system_prompt: str,
    ) -> int:
        """Insert a channel and its abilities; a ValueError says what the input lacks."""
        if channel_type(type) is None:
            raise ValueError(f"unknown channel type {type}")
        if problem := base_url_problem(base_url, websocket=speaks_websocket(type)):
            raise ValueError(problem)
        model_list = split_list(models)
        if not model_list:
            raise ValueError("a channel needs at least one model")
        groups = split_list(group) or ["default"]
        async with self._pool.acquire() as conn, conn.transaction():
            channel_id: int = await conn.fetchval(
                "INSERT INTO channels (type, name, key_enc, base_url, models, model_mapping,"
                ' "group", priority, weight, config, system_prompt) VALUES ($1, $2, $3, $4, $5,'
                " $6::jsonb, $7, $8, $9, $10::jsonb, $11) RETURNING id",
                type,
                name,
                encrypt_secret(key, secret_key),
                base_url,
                ",".join(model_list),
                model_mapping,
                ",".join(groups),
                priority,
                weight,
                config,
                system_prompt,
            )
            await self._rebuild_abilities(conn, channel_id)
        return channel_id

    async def update(self, channel_id: int, sets: dict[str, object]) -> bool:
        """Write ``sets`` (column → value; the caller validated each) and rebuild the
        abilities; False if there is no such channel, a ValueError (nothing written) if the
        base URL does not suit the channel's type."""
        casts = {"model_mapping": "::jsonb", "config": "::jsonb"}
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval(
                "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", channel_id
            )
            if exists is None:
                return False
            columns = "".join(f", {c} = ${i + 2}{casts.get(c, '')}" for i, c in enumerate(sets))
            row = await conn.fetchrow(
                f"UPDATE channels SET config_version = config_version + 1{columns}"
                " WHERE id = $1 RETURNING type, base_url",
                channel_id,
                *sets.values(),
            )
            if ("base_url" in sets or "type" in sets) and (
                problem := base_url_problem(
                    row["base_url"], websocket=speaks_websocket(row["type"])
                )
            ):
                raise ValueError(problem)  # rolls the update back
            await self._rebuild_abilities(conn, channel_id)
        return True

    @staticmethod
    async def _rebuild_abilities(conn: asyncpg.Connection, channel_id: int) -> None:
        row = await conn.fetchrow(
            'SELECT models, "group", priority, weight, status FROM channels WHERE id = $1',
            channel_id,
        )
        enabled = row["status"] == STATUS_ENABLED
        await conn.execute("DELETE FROM abilities WHERE channel_id = $1", channel_id)
        await conn.executemany(
            'INSERT INTO abilities ("group", model, channel_id, enabled, priority, weight)'
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (g, m, channel_id, enabled, row["priority"], row["weight"])
                for g in split_list(row["group"])
                for m in split_list(row["models"])
            ],
        )

    async def delete(self, channel_id: int) -> bool:
        return bool(
            await self._pool.fetchval("DELETE FROM channels WHERE id = $1 RETURNING id", channel_id)
        )

    async def delete_disabled(self) -> list[int]:
        rows = await self._pool.fetch("DELETE FROM channels WHERE status <> 1 RETURNING id")
        return [r["id"] for r in rows]

    async def set_balance(self, channel_id: int, balance: float, now: int) -> None:
        # A balance is a reading, not configuration: no config_version bump.
        await self._pool.execute(
            "UPDATE channels SET balance = $2, balance_updated_time = $3 WHERE id = $1",
            channel_id,
            balance,
            now,
        )

    # ---- health: auto-disable, tests, re-enable ------------------------------------------
    async def disable(self, channel_id: int, reason: str, now: int) -> bool:
        """Auto-disable (status 3) an enabled channel; False if it was not enabled."""
        return await self._switch(
            channel_id,
            "UPDATE channels SET status = 3, status_reason = $2, status_time = $3,"
            " config_version = config_version + 1 WHERE id = $1 AND status = 1"
            " RETURNING name",
            (reason[:500], now),
            enabled=False,
            now=now,
            what=f"disabled automatically: {reason}",
        )

    async def enable(self, channel_id: int, response_ms: int, now: int) -> bool:
        """Re-enable an auto-disabled channel whose test passed."""
        return await self._switch(
            channel_id,
            "UPDATE channels SET status = 1, status_reason = '', status_time = $2,"
            " test_time = $2, response_time = $3, test_error = '', key_status = '{}',"
            " config_version = config_version + 1"
            " WHERE id = $1 AND status = 3 RETURNING name",
            (now, response_ms),
            enabled=True,
            now=now,
            what="re-enabled: test passed",
        )

    async def disable_key(
        self, channel_id: int, fingerprint: str, reason: str, now: int, fingerprints: list[str]
    ) -> tuple[bool, bool]:
        """Take one key of an enabled multi-key channel out of rotation (``fingerprints``:
        all its keys'); the channel itself is disabled once none is left. Returns (key
        disabled now, channel disabled now)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT name, status, key_status::text AS ks FROM channels WHERE id = $1"
                " FOR UPDATE",
                channel_id,
            )
            if row is None or row["status"] != STATUS_ENABLED:
                return False, False
            states = orjson.loads(row["ks"])
            if states.get(fingerprint, {}).get("status", STATUS_ENABLED) != STATUS_ENABLED:
                return False, False
            states[fingerprint] = {"status": 3, "reason": reason[:300], "time": now}
            await conn.execute(
                "UPDATE channels SET key_status = $2::jsonb, config_version = config_version + 1"
                " WHERE id = $1",
                channel_id,
                orjson.dumps(states).decode(),
            )
            await conn.execute(
                "INSERT INTO logs (type, created_at, channel_id, content) VALUES ($1, $2, $3, $4)",
                LOG_TYPE_SYSTEM,
                now,
                channel_id,
                f"channel #{channel_id} ({row['name']}) key {fingerprint} disabled"
                f" automatically: {reason}",
            )
            left = [
                fp
                for fp in fingerprints
                if states.get(fp, {}).get("status", STATUS_ENABLED) == STATUS_ENABLED
            ]
        if left:
            return True, False
        return True, await self.disable(channel_id, f"every key disabled; last: {reason}", now)

    async def enable_key(self, channel_id: int, fingerprint: str) -> bool:
        """An admin puts a key back into rotation; False if it was not disabled."""
        done = await self._pool.fetchval(
            "UPDATE channels SET key_status = key_status - $2::text,"
            " config_version = config_version + 1"
            " WHERE id = $1 AND key_status ? $2::text RETURNING id",
            channel_id,
            fingerprint,
        )
        return done is not None

    async def _switch(
        self,
        channel_id: int,
        update: str,
        args: tuple[object, ...],
        *,
        enabled: bool,
        now: int,
        what: str,
    ) -> bool:
        """Run ``update`` (it returns the channel's name, or nothing if the channel was not
        in the state it switches from), then its abilities and a system log row, at once."""
        async with self._pool.acquire() as conn, conn.transaction():
            name = await conn.fetchval(update, channel_id, *args)
            if name is None:
                return False
            await conn.execute(
                "UPDATE abilities SET enabled = $2 WHERE channel_id = $1", channel_id, enabled
            )
            await conn.execute(
                "INSERT INTO logs (type, created_at, channel_id, content) VALUES ($1, $2, $3, $4)",
                LOG_TYPE_SYSTEM,
                now,
                channel_id,
                f"channel #{channel_id} ({name}) {what}",
            )
        return True

    async def record_test(
        self, channel_id: int, response_ms: int, now: int, error: str = ""
    ) -> None:
        """A test's outcome on the row: when, how long, and what failed (empty: passed)."""
        await self._pool.execute(
            "UPDATE channels SET test_time = $2, response_time = $3, test_error = $4 WHERE id = $1",
            channel_id,
            now,
            response_ms,
            error[:500],
        )

    async def auto_disabled(self) -> list[ChannelUnderTest]:
        """The auto-disabled channels with a model to test each with (the first by name)."""
        return await self._under_test(3)

    async def enabled_for_test(self) -> list[ChannelUnderTest]:
        """The enabled channels, each with the model to test it with."""
        return await self._under_test(STATUS_ENABLED)

    async def _under_test(self, status: int) -> list[ChannelUnderTest]:
        rows = await self._pool.fetch(
            "SELECT id, type, name, models, model_mapping, config_version,"
            " config->>'protocol' AS protocol FROM channels"
            " WHERE status = $1 ORDER BY id",
            status,
        )
        out = []
        for r in rows:
            models = sorted(set(split_list(r["models"])))
            if not models:
                continue
            out.append(
                ChannelUnderTest(
                    id=r["id"],
                    type=routed_type(r["type"], r["protocol"]),
                    model=models[0],
                    upstream_model=_upstream_model(r["model_mapping"], models[0]),
                    config_version=r["config_version"],
                    name=r["name"],
                )
            )
        return out


def split_keys(text: str) -> list[str]:
    """A channel's keys: one a line (One API's multi-key form)."""
    return [k for k in (line.strip() for line in text.splitlines()) if k]
