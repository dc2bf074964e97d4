"""The partitioned log table against the real Postgres: an existing table converted without
losing a row, one row per request whoever writes it, days created ahead, retention by
dropping whole days (and deleting only the day the cutoff falls in)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_DSN
from unigate.db import migrate as migrate_module
from unigate.db.migrate import ensure_database, migrate
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.request_ids import arrived_ms, issuer, new_request_id
from unigate.v1 import auth_pb2, billing_pb2, common_pb2, events_pb2
from unigate_billing import partitions
from unigate_billing.ledger import SWEPT_CODE, Ledger
from unigate_billing.logretention import delete_logs

DAY = partitions.DAY
PARTITIONED_IN = 17


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    name = "unigate_parts_" + secrets.token_hex(4)
    dsn = urlunsplit(urlsplit(PG_ADMIN_DSN)._replace(path=f"/{name}"))
    await ensure_database(dsn)
    yield dsn
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrate_before_partitioning(dsn: str) -> None:
    """The schema as it was before migration 0017, as an existing install has it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrate_module._migrations():
            if version >= PARTITIONED_IN:
                break
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
    finally:
        await conn.close()


def test_request_ids_carry_their_arrival_time() -> None:
    before = int(time.time() * 1000)
    rid = new_request_id()
    after = int(time.time() * 1000)
    assert len(rid) == 39 and rid == rid.lower()
    arrived = arrived_ms(rid)
    assert arrived is not None and before <= arrived <= after
    assert new_request_id() != new_request_id()
    assert arrived_ms(new_request_id(now_ms=86_400_000)) == 86_400_000
    # Ids of before (32 hex digits), and anything else, carry no time.
    assert arrived_ms(secrets.token_hex(16)) is None
    assert arrived_ms("req-" + secrets.token_hex(17)[:35]) is None
    assert arrived_ms("") is None


async def test_an_existing_log_table_is_converted_without_losing_a_row(fresh_dsn: str) -> None:
    await migrate_before_partitioning(fresh_dsn)
    now = int(time.time())
    old_day = now - 400 * DAY
    conn = await asyncpg.connect(fresh_dsn)
    try:
        rows = [
            # (request_id, type, created_at, quota, content)
            (secrets.token_hex(16), 2, now - 5, 11, ""),
            (secrets.token_hex(16), 2, now - 3 * DAY, 22, ""),
            (secrets.token_hex(16), 2, old_day, 33, ""),
            (None, 1, old_day, 500, "redeemed"),
            (None, 3, now - 60, -7, "adjusted"),
            (None, 4, now, 0, "system"),
        ]
        await conn.executemany(
            "INSERT INTO logs (request_id, type, created_at, quota, content)"
            " VALUES ($1, $2, $3, $4, $5)",
            rows,
        )
        before = {
            r["id"]: tuple(r.values())
            for r in await conn.fetch(
                "SELECT id, request_id, type, created_at, quota, content FROM logs"
            )
        }
    finally:
        await conn.close()

    await migrate(fresh_dsn, root_password="pw")

    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert (
            await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'logs'") == "p"
        )
        after = {
            r["id"]: tuple(r.values())
            for r in await conn.fetch(
                "SELECT id, request_id, type, created_at, quota, content FROM logs"
            )
        }
        assert after == before
        # Each consume row in its day's partition, the rest in logs_other.
        for rid, log_type, created_at, *_ in rows:
            table = await conn.fetchval(
                "SELECT tableoid::regclass::text FROM logs WHERE type = $1 AND created_at = $2",
                log_type,
                created_at,
            )
            expected = partitions.day_table(created_at // DAY) if log_type == 2 else "logs_other"
            assert table == expected, (rid, log_type)
        # A week of days ahead exists, and ids go on from the same sequence.
        days = await partitions.consume_days(conn)
        assert all(d in days for d in range(now // DAY - 1, now // DAY + 8))
        new_id = await conn.fetchval(
            "INSERT INTO logs (type, created_at) VALUES (4, $1) RETURNING id", now
        )
        assert new_id > max(before)
        assert await conn.fetchval("SELECT count(*) FROM logs_consume_default") == 0
    finally:
        await conn.close()


PRICING = auth_pb2.Pricing(model_ratio=1, completion_ratio=1, group_ratio=1)


def event(rid: str, quota: int, error_code: str, created_ms: int) -> events_pb2.UsageEvent:
    return events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=rid,
        reservation_id=rid,
        reserved_quota=100,
        user_id=1,
        token_id=0,
        model="m",
        usage=common_pb2.Usage(prompt_tokens=quota, estimated=bool(error_code)),
        pricing=PRICING,
        quota=quota,
        status_code=200,
        error_code=error_code,
        created_at_ms=created_ms,
    )


async def test_one_row_per_request_whoever_writes_it_and_whenever(fresh_dsn: str) -> None:
    await migrate(fresh_dsn, root_password="pw")
    pool = await asyncpg.create_pool(fresh_dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        ledger = Ledger(pool)
        # Arrived just before midnight, ended (the gateway's event) after it, and swept at
        # the reservation's time: all three name the same row, in the same partition.
        midnight = (int(time.time()) // DAY) * DAY
        rid = new_request_id(now_ms=(midnight - 2) * 1000)
        swept = await ledger.apply([event(rid, 100, SWEPT_CODE, (midnight - 2) * 1000)])
        assert [a.charged for a in swept] == [100]
        real = await ledger.apply([event(rid, 40, "", (midnight + 30) * 1000)])
        assert [(a.corrected, a.charged) for a in real] == [(True, -60)]
        assert await ledger.apply([event(rid, 40, "", (midnight + 30) * 1000)]) == []
        row = await pool.fetchrow(
            "SELECT count(*) AS n, min(quota) AS q, min(created_at) AS t,"
            " min(tableoid::regclass::text) AS part FROM logs WHERE request_id = $1",
            rid,
        )
        assert (row["n"], row["q"], row["t"]) == (1, 40, midnight - 2)
        assert row["part"] == partitions.day_table((midnight - 2) // DAY)
        used = await pool.fetchval("SELECT used_quota FROM users WHERE id = 1")
        assert used == 40
    finally:
        await pool.close()


async def test_retention_drops_whole_days_and_deletes_only_the_cutoff_day(
    fresh_dsn: str,
) -> None:
    await migrate(fresh_dsn, root_password="pw")
    pool = await asyncpg.create_pool(fresh_dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        today = int(time.time()) // DAY
        first = today - 10
        # Ten past days, made as the job makes them (``ensure_days`` from their own "now").
        for day in range(first, today):
            await partitions.ensure_days(pool, day * DAY, ahead=0)
        have = await partitions.consume_days(pool)
        assert all(d in have for d in range(first - 1, today + 1))
        # Three consume rows per day (at 01:00, 12:00, 23:00) and one top-up per day.
        for day in range(first, today):
            for hour in (1, 12, 23):
                await pool.execute(
                    "INSERT INTO logs (request_id, type, created_at, quota) VALUES ($1, 2, $2, 1)",
                    new_request_id(),
                    day * DAY + hour * 3600,
                )
            await pool.execute(
                "INSERT INTO logs (type, created_at, quota) VALUES (1, $1, 5)", day * DAY + 60
            )
        # Forget before noon of the fourth day: three whole days dropped, that day's 01:00 row
        # deleted, its 12:00 and 23:00 rows kept.
        cutoff = (first + 3) * DAY + 12 * 3600
        gone = await partitions.forget_consume_before(pool, cutoff)
        assert (gone.dropped_days, gone.dropped_rows, gone.deleted_rows) == (4, 3 * 3, 1)
        # (the fourth dropped day is the empty one before ``first``, made with it)
        left = await partitions.consume_days(pool)
        assert not any(d < first + 3 for d in left)
        consume = await pool.fetch("SELECT created_at FROM logs WHERE type = 2")
        assert min(r["created_at"] for r in consume) == cutoff
        assert len(consume) == 3 * 10 - 10
        # Top-ups are another type's: untouched by consume retention, gone by their own.
        assert await pool.fetchval("SELECT count(*) FROM logs WHERE type = 1") == 10
        assert await partitions.forget_other_before(pool, (first + 5) * DAY, 1) == 5

        # The job: retention of 2 days keeps today and the two days before it whole.
        await partitions.maintain(pool, partitions.Retention(consume_days=2), now=today * DAY + 100)
        kept = await pool.fetchval("SELECT min(created_at) FROM logs WHERE type = 2")
        assert kept // DAY == today - 2
        assert all(d >= today - 2 for d in await partitions.consume_days(pool))
        # It left the note the audit reads, and days ahead.
        note = await pool.fetchval(
            "SELECT content FROM logs WHERE type = 4 ORDER BY id DESC LIMIT 1"
        )
        assert note.endswith(f"created before {(today - 2) * DAY}")
        assert (today + 7) in await partitions.consume_days(pool)

        # One API's DELETE /api/log/?target_timestamp=: every type, whole days dropped.
        answer = await delete_logs(
            pool, billing_pb2.DeleteLogsRequest(before_timestamp=(today - 1) * DAY)
        )
        assert answer.deleted == 3 + 4
        assert await pool.fetchval("SELECT count(*) FROM logs WHERE type IN (1, 2)") == 3 + 1
    finally:
        await pool.close()


def test_retention_by_type_is_parsed_or_refused() -> None:
    assert partitions.parse_retention_by_type("1=3650, 3=365,") == {1: 3650, 3: 365}
    assert partitions.parse_retention_by_type("") == {}
    with pytest.raises(ValueError, match="type=days"):
        partitions.parse_retention_by_type("1:30")


def test_request_ids_name_the_gateway_process_that_made_them() -> None:
    a, b = new_request_id(now_ms=1), new_request_id(now_ms=2)
    assert issuer(a) == issuer(b) and issuer(a) is not None and len(issuer(a) or "") == 16
    assert issuer(secrets.token_hex(16)) is None
