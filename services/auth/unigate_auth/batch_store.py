"""Postgres records of Anthropic Message Batches made through the gateway
(``message_batches``, migration 0018): who made each, on which channel and key, and what
billing its results needs. Read and written by ``unigate_auth.message_batches`` only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from unigate.v1 import auth_pb2

CREATING, OPEN, BILLED, FAILED = "creating", "open", "billed", "failed"


@dataclass(frozen=True, slots=True)
class BatchItem:
    custom_id: str
    model: str
    upstream_model: str
    # The request's share of the batch's reservation.
    share: int


@dataclass(frozen=True, slots=True)
class BatchRecord:
    reservation_id: str
    batch_id: str
    user_id: int
    token_id: int
    token_name: str
    group: str
    client_ip: str
    unlimited: bool
    channel_id: int
    key_fingerprint: str
    created_ms: int
    reserved_quota: int
    items: tuple[BatchItem, ...]
    pricing: dict[str, auth_pb2.Pricing]
    state: str
    object: dict[str, Any] | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _record(row: asyncpg.Record) -> BatchRecord:
    items = orjson.loads(row["items"])
    pricing = orjson.loads(row["pricing"])
    return BatchRecord(
        reservation_id=row["reservation_id"],
        batch_id=row["batch_id"] or "",
        user_id=row["user_id"],
        token_id=row["token_id"],
        token_name=row["token_name"],
        group=row["group"],
        client_ip=row["client_ip"],
        unlimited=row["unlimited"],
        channel_id=row["channel_id"],
        key_fingerprint=row["key_fingerprint"],
        created_ms=row["created_ms"],
        reserved_quota=row["reserved_quota"],
        items=tuple(BatchItem(*item) for item in items),
        pricing={m: auth_pb2.Pricing.FromString(bytes.fromhex(h)) for m, h in pricing.items()},
        state=row["state"],
        object=orjson.loads(row["object"]) if row["object"] else None,
    )


class BatchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def begin(self, record: BatchRecord) -> None:
        """Record a batch about to be created upstream (state ``creating``)."""
        await self._pool.execute(
            "INSERT INTO message_batches (reservation_id, user_id, token_id, token_name,"
            ' "group", client_ip, unlimited, channel_id, created_ms, reserved_quota, items,'
            " pricing, state, updated_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14)",
            record.reservation_id,
            record.user_id,
            record.token_id,
            record.token_name,
            record.group,
            record.client_ip,
            record.unlimited,
            record.channel_id,
            record.created_ms,
            record.reserved_quota,
            orjson.dumps(
                [[i.custom_id, i.model, i.upstream_model, i.share] for i in record.items]
            ).decode(),
            orjson.dumps(
                {m: p.SerializeToString().hex() for m, p in record.pricing.items()}
            ).decode(),
            CREATING,
            _now_ms(),
        )

    async def opened(
        self, reservation_id: str, batch_id: str, key_fingerprint: str, obj: dict[str, Any]
    ) -> None:
        await self._pool.execute(
            "UPDATE message_batches SET batch_id = $2, key_fingerprint = $3, object = $4::jsonb,"
            " state = $5, updated_ms = $6 WHERE reservation_id = $1",
            reservation_id,
            batch_id,
            key_fingerprint,
            orjson.dumps(obj).decode(),
            OPEN,
            _now_ms(),
        )

    async def set_state(self, reservation_id: str, state: str) -> None:
        await self._pool.execute(
            "UPDATE message_batches SET state = $2, updated_ms = $3 WHERE reservation_id = $1",
            reservation_id,
            state,
            _now_ms(),
        )

    async def save_object(self, reservation_id: str, obj: dict[str, Any]) -> None:
        await self._pool.execute(
            "UPDATE message_batches SET object = $2::jsonb, updated_ms = $3"
            " WHERE reservation_id = $1",
            reservation_id,
            orjson.dumps(obj).decode(),
            _now_ms(),
        )

    async def mark_deleted(self, reservation_id: str) -> None:
        await self._pool.execute(
            "UPDATE message_batches SET deleted = true, updated_ms = $2 WHERE reservation_id = $1",
            reservation_id,
            _now_ms(),
        )

    async def owned(self, batch_id: str, user_id: int) -> BatchRecord | None:
        """The user's batch of this id, unless deleted (anyone else's: None, as unknown)."""
        row = await self._pool.fetchrow(
            "SELECT * FROM message_batches WHERE batch_id = $1 AND user_id = $2 AND NOT deleted",
            batch_id,
            user_id,
        )
        return _record(row) if row is not None else None

    async def page(
        self, user_id: int, limit: int, before_id: str, after_id: str
    ) -> tuple[list[BatchRecord], bool] | None:
        """A page of the user's batches, newest first (Anthropic's cursors: ``after_id``
        pages to older ones, ``before_id`` to newer); None when a cursor is not theirs."""
        cursor_id = after_id or before_id
        cursor_ms = 0
        if cursor_id:
            cursor = await self.owned(cursor_id, user_id)
            if cursor is None:
                return None
            cursor_ms = cursor.created_ms
        base = (
            "SELECT * FROM message_batches WHERE user_id = $1 AND NOT deleted"
            " AND batch_id IS NOT NULL"
        )
        if after_id:
            rows = await self._pool.fetch(
                base + " AND (created_ms, batch_id) < ($2, $3)"
                " ORDER BY created_ms DESC, batch_id DESC LIMIT $4",
                user_id,
                cursor_ms,
                after_id,
                limit + 1,
            )
        elif before_id:
            rows = await self._pool.fetch(
                base + " AND (created_ms, batch_id) > ($2, $3)"
                " ORDER BY created_ms ASC, batch_id ASC LIMIT $4",
                user_id,
                cursor_ms,
                before_id,
                limit + 1,
            )
            more = len(rows) > limit
            return [_record(r) for r in reversed(rows[:limit])], more
        else:
            rows = await self._pool.fetch(
                base + " ORDER BY created_ms DESC, batch_id DESC LIMIT $2", user_id, limit + 1
            )
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    async def unbilled(self, older_than_ms: int, limit: int = 100) -> list[BatchRecord]:
        """Batches whose results are not billed yet (and creations left half-way), the
        least recently looked at first."""
        rows = await self._pool.fetch(
            "SELECT * FROM message_batches WHERE state IN ($1, $2) AND updated_ms <= $3"
            " ORDER BY updated_ms LIMIT $4",
            CREATING,
            OPEN,
            older_than_ms,
            limit,
        )
        return [_record(r) for r in rows]

    async def touch(self, reservation_id: str) -> None:
        await self._pool.execute(
            "UPDATE message_batches SET updated_ms = $2 WHERE reservation_id = $1",
            reservation_id,
            _now_ms(),
        )

    async def known(self, batch_id: str) -> bool:
        """Whether any record names this batch (the poller's adoption skips those)."""
        return bool(
            await self._pool.fetchval("SELECT 1 FROM message_batches WHERE batch_id = $1", batch_id)
        )
