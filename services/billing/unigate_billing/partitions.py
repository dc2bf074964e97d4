"""The log table's partitions: days created ahead, and retention by dropping whole days.

``logs`` is partitioned by type, and its consume rows (``logs_consume``) by UTC day into
``logs_consume_YYYYMMDD`` (migration 0017 explains the layout). This module keeps a week of
days ahead of the clock, so that no row ever lands in ``logs_consume_default``, and forgets
old rows: a day wholly before the cutoff is dropped (``DROP TABLE``: instant, whatever its
size, and no dead tuples left to vacuum); only the day the cutoff falls in, the default
partition and the other, small types are deleted row by row, in short batches.

Balances and rollups are untouched by retention: the charges were applied when the rows
were, and ``usage_daily`` keeps counting forgotten days.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from unigate_billing.audit import DELETE_NOTE

log = logging.getLogger(__name__)

DAY = 86_400
LOG_TYPE_CONSUME = 2
# Rows per DELETE: each transaction (and its locks) stays short while the consumer inserts.
BATCH_ROWS = 10_000
_DAY_TABLE = re.compile(r"^logs_consume_(\d{8})$")
# One billing process at a time creates and drops partitions (two racing would only err,
# but one is enough): a session-level advisory lock, released when the job ends.
_LOCK_ID = 0x756E6C67  # "unlg"


def day_table(day: int) -> str:
    """The partition of UTC day number ``day`` (days since 1970-01-01)."""
    return "logs_consume_" + dt.datetime.fromtimestamp(day * DAY, dt.UTC).strftime("%Y%m%d")


def _day_of(table: str) -> int | None:
    match = _DAY_TABLE.match(table)
    if match is None:
        return None
    start = dt.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=dt.UTC)
    return int(start.timestamp()) // DAY


async def consume_days(conn: asyncpg.Connection | asyncpg.Pool) -> dict[int, str]:
    """The day partitions that exist, by day number."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'logs_consume'::regclass"
    )
    days = {}
    for r in rows:
        day = _day_of(r["relname"])
        if day is not None:
            days[day] = r["relname"]
    return days


async def ensure_days(pool: asyncpg.Pool, now: float, *, ahead: int = 7) -> list[str]:
    """Create the partitions of yesterday through ``ahead`` days from now; returns those made.

    A day whose rows already sit in the default partition (billing was off for a week) cannot
    be created until they move: that is logged, and the rows stay queryable where they are."""
    today = int(now) // DAY
    have = await consume_days(pool)
    made = []
    for day in range(today - 1, today + ahead + 1):
        if day in have:
            continue
        name = day_table(day)
        try:
            await pool.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF logs_consume"
                f" FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
            )
        except asyncpg.CheckViolationError:
            log.error("cannot create %s: rows of that day are in logs_consume_default", name)
            continue
        made.append(name)
    return made


@dataclass(frozen=True, slots=True)
class Forgotten:
    dropped_days: int = 0
    deleted_rows: int = 0
    dropped_rows: int = 0


async def _delete_batched(pool: asyncpg.Pool, table: str, where: str, *args: object) -> int:
    deleted = 0
    while True:
        status: str = await pool.execute(
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
            f" WHERE {where} LIMIT {BATCH_ROWS}))",
            *args,
        )
        count = int(status.rsplit(" ", 1)[-1])
        deleted += count
        if count < BATCH_ROWS:
            return deleted


async def forget_consume_before(pool: asyncpg.Pool, before: int) -> Forgotten:
    """Forget consume rows created before ``before`` (unix seconds)."""
    dropped = dropped_rows = 0
    for day, table in sorted((await consume_days(pool)).items()):
        if (day + 1) * DAY <= before:
            # Counted first, for the audit's note; a reltuples estimate would do for a log
            # line, but the note says how many rows went.
            n: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
            await pool.execute(f"DROP TABLE {table}")
            dropped += 1
            dropped_rows += n
    deleted = await _delete_batched(pool, "logs_consume_default", "created_at < $1", before)
    boundary = (await consume_days(pool)).get(before // DAY)
    if boundary is not None and before % DAY:
        deleted += await _delete_batched(pool, boundary, "created_at < $1", before)
    return Forgotten(dropped, deleted, dropped_rows)


async def forget_other_before(pool: asyncpg.Pool, before: int, log_type: int | None = None) -> int:
    """Forget rows of the types other than consume (top-ups, management, system, tests): of
    ``log_type``, or of all of them."""
    if log_type is None:
        return await _delete_batched(pool, "logs_other", "created_at < $1", before)
    return await _delete_batched(
        pool, "logs_other", "type = $1 AND created_at < $2", log_type, before
    )


def parse_retention_by_type(text: str) -> dict[int, int]:
    """``LOG_RETENTION_DAYS_BY_TYPE``: ``type=days`` pairs, comma-separated (``1=3650,3=365``)."""
    out: dict[int, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        log_type, sep, days = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(log_type)] = int(days)
        except ValueError:
            raise ValueError(
                f"LOG_RETENTION_DAYS_BY_TYPE: {part.strip()!r} is not type=days"
            ) from None
    return out


@dataclass(frozen=True, slots=True)
class Retention:
    """Days each log type is kept (0: forever)."""

    consume_days: int = 0
    other_days: Mapping[int, int] | None = None


async def maintain(pool: asyncpg.Pool, retention: Retention, now: float | None = None) -> None:
    """One round of the job: days ahead created, expired rows forgotten. Skipped when another
    billing process holds the job."""
    now = time.time() if now is None else now
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_ID):
            return
        try:
            made = await ensure_days(pool, now)
            if made:
                log.info("created log partitions %s", ", ".join(made))
            if retention.consume_days > 0:
                # Whole days only: the cutoff is a UTC midnight, so whole partitions go.
                before = (int(now) // DAY - retention.consume_days) * DAY
                gone = await forget_consume_before(pool, before)
                if gone.dropped_days or gone.deleted_rows:
                    await note_forgotten(pool, gone.dropped_rows + gone.deleted_rows, before, now)
                    log.info(
                        "log retention: %d days dropped (%d rows), %d rows deleted, before %d",
                        gone.dropped_days,
                        gone.dropped_rows,
                        gone.deleted_rows,
                        before,
                    )
            for log_type, days in (retention.other_days or {}).items():
                if days > 0 and log_type != LOG_TYPE_CONSUME:
                    await forget_other_before(pool, int(now) - days * DAY, log_type)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def maintain_forever(pool: asyncpg.Pool, retention: Retention, interval: float) -> None:
    """The job, at start and every ``interval`` seconds; a failed round is logged and retried."""
    while True:
        try:
            await maintain(pool, retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("log partition maintenance failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


async def note_forgotten(pool: asyncpg.Pool, n: int, before: int, now: float) -> None:
    """A system row saying where consume rows stop being complete, which the audit reads to
    compare rollups with rows only where both are whole (``unigate_billing.audit``)."""
    await pool.execute(
        "INSERT INTO logs (type, created_at, content) VALUES (4, $1, $2)",
        int(now),
        DELETE_NOTE.format(n=n, before=before),
    )
