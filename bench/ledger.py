"""Benchmark of the ledger at scale: ``logs`` with a long history, and what billing does on it.

1. **History.** A fresh database of its own (``unigate_bench_ledger_<hex>``, migrated by
   ``unigate.db.migrate``) gets users, keys and channels, then N log rows by binary COPY
   (``copy_records_to_table``), day by day over D days ending yesterday: consume rows nearly
   all (many users, keys, channels and models, skewed as real traffic is: a few users and
   models carry most of it), plus top-up and management rows (``--other-share``). Then the
   ``usage_daily`` rollups and the users', keys' and channels' used quota are computed from
   the rows, so that the audit's invariants hold, and checked.
2. **Consumer.** billing's consumer (bench/consumer.py: real JetStream, Redis reservations,
   ``UsageConsumer`` + ``Ledger``) applies ``--events`` events into this database, and into a
   fresh empty one, same run: events/s.
3. **Log pages.** ``list_logs`` as billing's ``ListLogs`` runs it (capped count + page): the
   first page, the next by cursor, the last, the one before it by cursor and One API's
   ``p=0``, unfiltered and by user, key, model, channel, type and one day: p50/p95/p99 ms, and
   the rows and buffers each statement read (EXPLAIN ANALYZE; ``--plans FILE`` keeps the
   plans).
4. **Statistics.** ``usage_stats`` by day, by model, by day and model: whole range, a range
   with partial days, one user.
5. **Export.** ``export_csv`` of one channel's rows of one day: rows/s.
6. **Retention.** ``forget_consume_before`` dropping the oldest day (its partition), against
   the batched DELETE (billing's ``DELETE ... LIMIT 10000`` loop) of the same rows in a plain,
   unpartitioned table holding that day and the next with the pre-0017 indexes.
7. **Migration 0017.** Another fresh database migrated up to 0011, ``--conversion-rows`` rows
   copied into the unpartitioned ``logs``, then migrated: rows/s of the conversion.

`.venv/bin/python bench/ledger.py [--rows 100000000] [--days 30]` (or `make bench-ledger`).
Needs Postgres, Redis and NATS JetStream as for the tests. Everything it creates is removed
at the end (``--keep`` keeps the history database for a look with psql).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import math
import os
import platform
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).parent))

from consumer import measure as measure_consumer_empty
from consumer import measure_in as measure_consumer_in
from run import drop_database, with_database

from unigate.db import create_pool
from unigate.db.migrate import _LOCK_ID, _migrations, migrate
from unigate.db.plans import StatementLog, buffers, rows_read
from unigate.v1 import billing_pb2
from unigate_billing.logexport import export_csv
from unigate_billing.logpages import list_logs, page_session
from unigate_billing.partitions import (
    BATCH_ROWS,
    DAY,
    consume_days,
    day_table,
    forget_consume_before,
)
from unigate_billing.usage_stats import usage_stats

ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).parent / "ledger-results.md"

# (model, share of requests, model ratio, completion ratio): a few models carry most traffic.
MODELS = (
    ("gpt-4o-mini", 30, 0.075, 4.0),
    ("gpt-4o", 14, 1.25, 4.0),
    ("claude-3-5-haiku", 10, 0.4, 5.0),
    ("claude-sonnet-4", 9, 1.5, 5.0),
    ("gemini-2.0-flash", 9, 0.05, 4.0),
    ("gemini-2.5-pro", 5, 0.625, 8.0),
    ("deepseek-chat", 6, 0.135, 4.0),
    ("deepseek-reasoner", 3, 0.275, 4.0),
    ("o3-mini", 3, 0.55, 4.0),
    ("text-embedding-3-small", 6, 0.01, 1.0),
    ("llama-3.3-70b", 2, 0.3, 1.0),
    ("qwen-max", 2, 0.8, 4.0),
    ("mistral-large", 1, 1.0, 3.0),
)
ENDPOINTS = ("chat.completions", "chat.completions", "chat.completions", "messages", "embeddings")
COPY_COLUMNS = (
    "id",
    "request_id",
    "type",
    "created_at",
    "user_id",
    "username",
    "token_id",
    "token_name",
    "channel_id",
    "channels_tried",
    "model_name",
    "upstream_model",
    "endpoint",
    "group",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "quota",
    "model_ratio",
    "completion_ratio",
    "group_ratio",
    "latency_ms",
    "first_token_ms",
    "is_stream",
    "status_code",
    "client_ip",
    "reserved_quota",
    "content",
)
Row = tuple[object, ...]
T = TypeVar("T")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# What a Postgres restart looks like from here (the shared server is restarted by other work's
# tests now and then): the statement in flight is rolled back, so it is retried afresh.
_GONE = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
)


class Db:
    """One connection to the bench's database that survives a restart of the server."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        for attempt in range(30):
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.dsn)
                return await fn(self._conn)
            except _GONE as exc:
                print(f"  Postgres went away ({type(exc).__name__}); retrying", flush=True)
                self._conn = None
                await asyncio.sleep(min(2 + attempt, 10))
        raise RuntimeError("Postgres did not come back")

    async def execute(self, sql: str, *args: object) -> str:
        return await self.run(lambda c: c.execute(sql, *args))

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self.run(lambda c: c.fetchval(sql, *args))

    async def fetchrow(self, sql: str, *args: object) -> Any:
        return await self.run(lambda c: c.fetchrow(sql, *args))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


@dataclass
class World:
    """Who and what the history is about; ids as the seed step creates them."""

    users: int
    tokens_per_user: int
    channels: int
    rng: random.Random = field(default_factory=lambda: random.Random(21))

    def __post_init__(self) -> None:
        # Zipf-like: user k (from 0) carries 1/(k+1)^0.9 of the traffic, cumulated for choices.
        self.user_weights = list(_cumulate([1 / (k + 1) ** 0.9 for k in range(self.users)]))
        self.model_weights = list(_cumulate([m[1] for m in MODELS]))
        # Channels serving each model: a few per model, channel ids 1..channels.
        self.model_channels = [
            [1 + (i * 3 + j) % self.channels for j in range(3)] for i in range(len(MODELS))
        ]

    def user_id(self, k: int) -> int:
        return k + 2  # id 1 is root

    def token_id(self, k: int, j: int) -> int:
        return k * self.tokens_per_user + j + 1


def _cumulate(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


class Generator:
    """Log rows in time order with increasing ids, as billing writes them."""

    def __init__(self, world: World, other_share: float) -> None:
        self.w = world
        self.other_share = other_share
        self.next_id = 1
        self.prefix = secrets.token_hex(8)
        self.counter = 0

    def rows(self, lo: int, hi: int, n: int) -> tuple[list[Row], list[Row]]:
        """(consume rows, other rows) in seconds [lo, hi): ``n`` rows in all."""
        w, rng = self.w, self.w.rng
        n_other = int(n * self.other_share)
        times = sorted(rng.randrange(lo, hi) for _ in range(n))
        users = rng.choices(range(w.users), cum_weights=w.user_weights, k=n)
        models = rng.choices(range(len(MODELS)), cum_weights=w.model_weights, k=n)
        is_other = set(rng.sample(range(n), n_other))
        consume: list[Row] = []
        other: list[Row] = []
        tpu = w.tokens_per_user
        for i in range(n):
            rid, created = self.next_id, times[i]
            self.next_id += 1
            k = users[i]
            uid = w.user_id(k)
            if i in is_other:
                # A top-up (type 1) or a management note (type 3): small, no key or model.
                top_up = rng.random() < 0.5
                other.append(
                    (rid, None, 1 if top_up else 3, created, uid, f"user{uid}", 0, "", 0, [],
                     "", "", "", "", 0, 0, 0, rng.choice((500_000, 5_000_000)) if top_up else 0,
                     0.0, 0.0, 0.0, 0, 0, False, 0, "", 0,
                     "top-up by redemption code" if top_up else "quota changed by admin")
                )  # fmt: skip
                continue
            m = models[i]
            name, _, ratio, completion_ratio = MODELS[m]
            j = rng.randrange(tpu) if rng.random() < 0.3 else 0  # most use their first key
            ch = w.model_channels[m][rng.randrange(3)]
            prompt = int(rng.lognormvariate(6.5, 1.1)) + 1
            completion = 0 if name.startswith("text-") else int(rng.lognormvariate(5.0, 1.0))
            quota = math.ceil((prompt + completion * completion_ratio) * ratio)
            stream = rng.random() < 0.6
            latency = int(rng.lognormvariate(7.0, 0.7))
            self.counter += 1
            request_id = (
                f"{created * 1000 + rng.randrange(1000):011x}{self.prefix}{self.counter:012x}"
            )
            consume.append(
                (rid, request_id, 2, created, uid, f"user{uid}", w.token_id(k, j), f"key{j}",
                 ch, [ch], name, name, ENDPOINTS[m % len(ENDPOINTS)], "default", prompt,
                 completion, prompt // 4 if rng.random() < 0.2 else 0, quota, ratio,
                 completion_ratio, 1.0, latency, latency // 5 if stream else 0, stream, 200,
                 "10.0.0.1", quota * 2, "")
            )  # fmt: skip
        return consume, other


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


async def seed_world(conn: Db | asyncpg.Connection, w: World) -> None:
    """Users, their keys and the channels, in bulk: the rows the log rows name."""
    await conn.execute(
        "INSERT INTO users (id, username, password_hash, quota)"
        " SELECT g, 'user' || g, 'x', 10000000000 FROM generate_series(2, $1 + 1) g",
        w.users,
    )
    await conn.execute(
        "INSERT INTO tokens (id, user_id, key_hash, key_prefix, name, unlimited_quota)"
        " SELECT k * $2 + j + 1, k + 2, decode(md5('bench' || (k * $2 + j)), 'hex'),"
        " 'sk-bench', 'key' || j, TRUE"
        " FROM generate_series(0, $1 - 1) k, generate_series(0, $2 - 1) j",
        w.users,
        w.tokens_per_user,
    )
    await conn.execute(
        "INSERT INTO channels (id, type, name, key_enc, models)"
        " SELECT g, 1, 'channel' || g, '\\x00'::bytea, '' FROM generate_series(1, $1) g",
        w.channels,
    )
    for table in ("users", "tokens", "channels"):
        await conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")


async def copy_history(
    conn: Db, gen: Generator, rows: int, days: list[int], table: str = "logs"
) -> tuple[float, float]:
    """COPY ``rows`` rows spread evenly over ``days``; returns (seconds in all, seconds in
    Postgres' COPY alone)."""
    started, in_copy = time.perf_counter(), 0.0
    per_day, extra = divmod(rows, len(days))
    chunk = 200_000
    for i, day in enumerate(days):
        n_day = per_day + (1 if i < extra else 0)
        # The day in slices of time, one COPY each, so that ids increase with time.
        slices = max(1, -(-n_day // chunk))
        for s in range(slices):
            n = n_day // slices + (1 if s < n_day % slices else 0)
            lo = day * DAY + s * DAY // slices
            consume, other = gen.rows(lo, day * DAY + (s + 1) * DAY // slices, n)
            t = time.perf_counter()
            records = consume + other
            await conn.run(
                lambda c, records=records: c.copy_records_to_table(  # type: ignore[misc]
                    table, records=records, columns=COPY_COLUMNS
                )
            )
            in_copy += time.perf_counter() - t
        print(
            f"  day {i + 1}/{len(days)} {day_table(day)}: {gen.next_id - 1:,} rows,"
            f" {time.perf_counter() - started:.0f} s, load {load()}",
            flush=True,
        )
    await conn.execute(f"SELECT setval('logs_id_seq', {gen.next_id})")
    return time.perf_counter() - started, in_copy


ROLLUPS = """
INSERT INTO usage_daily (day, user_id, token_id, channel_id, model_name, requests,
                         prompt_tokens, completion_tokens, quota)
SELECT date '1970-01-01' + (created_at / 86400)::int, user_id, token_id, channel_id, model_name,
       count(*), sum(prompt_tokens), sum(completion_tokens), sum(quota)
  FROM logs WHERE type = 2 GROUP BY 1, 2, 3, 4, 5
"""
USED = """
UPDATE users u SET used_quota = s.q, request_count = s.n
  FROM (SELECT user_id, sum(quota) q, sum(requests) n FROM usage_daily GROUP BY 1) s
 WHERE u.id = s.user_id;
UPDATE tokens t SET used_quota = s.q
  FROM (SELECT token_id, sum(quota) q FROM usage_daily GROUP BY 1) s WHERE t.id = s.token_id;
UPDATE channels c SET used_quota = s.q
  FROM (SELECT channel_id, sum(quota) q FROM usage_daily GROUP BY 1) s
 WHERE c.id = s.channel_id;
"""


async def check_consistent(conn: Db) -> None:
    """The audit's invariants on the generated history: rollups = rows, used = rollups."""
    logs = await conn.fetchrow(
        "SELECT count(*) n, sum(quota) q, sum(prompt_tokens) p FROM logs WHERE type = 2"
    )
    roll = await conn.fetchrow(
        "SELECT sum(requests) n, sum(quota) q, sum(prompt_tokens) p FROM usage_daily"
    )
    users = await conn.fetchval("SELECT sum(used_quota) FROM users")
    tokens = await conn.fetchval("SELECT sum(used_quota) FROM tokens")
    channels = await conn.fetchval("SELECT sum(used_quota) FROM channels")
    if tuple(logs) != tuple(roll) or not logs["q"] == users == tokens == channels:
        raise RuntimeError(f"history inconsistent: {logs} {roll} {users} {tokens} {channels}")
    default = await conn.fetchval("SELECT count(*) FROM logs_consume_default")
    if default:
        raise RuntimeError(f"{default} rows fell into logs_consume_default")


async def sizes(conn: Db, root: str = "logs") -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid))"
        " FROM pg_partition_tree($1) WHERE isleaf",
        root,
    )
    return int(row[0] or 0), int(row[1] or 0)


def cells(*values: object) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def gb(n: int) -> str:
    return f"{n / 1024**3:.2f} GB"


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    ms: list[float]
    note: str = ""

    def row(self) -> str:
        s = sorted(self.ms)
        p50 = statistics.median(s)
        p95 = s[min(len(s) - 1, math.ceil(len(s) * 0.95) - 1)]
        p99 = s[min(len(s) - 1, math.ceil(len(s) * 0.99) - 1)]
        return f"| {self.name} | {len(s)} | {p50:,.1f} | {p95:,.1f} | {p99:,.1f} | {self.note} |"


async def timed(name: str, fn: Callable[[], Awaitable[str]], repeat: int, budget: float) -> Timing:
    """Run ``fn`` ``repeat`` times (at least 3, and no more once ``budget`` seconds are spent);
    its return value is the note."""
    ms: list[float] = []
    note = ""
    started = time.perf_counter()
    while len(ms) < repeat and (len(ms) < 3 or time.perf_counter() - started < budget):
        t = time.perf_counter()
        try:
            note = await fn()
        except _GONE as exc:  # a restart of the server: that run does not count
            print(f"  Postgres went away ({type(exc).__name__}); retrying", flush=True)
            await asyncio.sleep(5)
            continue
        ms.append((time.perf_counter() - t) * 1000)
    out = Timing(name, ms, note)
    print("  " + out.row(), flush=True)
    return out


async def explained(dsn: str, request: billing_pb2.ListLogsRequest, plans: list[str] | None) -> str:
    """What each statement of one page read, from EXPLAIN (ANALYZE, BUFFERS) planned for its
    values as list_logs plans it; the text plans go to ``plans``."""
    log = StatementLog("logs")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=log.attach)
    assert pool is not None
    try:
        await list_logs(pool, request)
        statements = list(log.statements)
        parts = []
        async with page_session(pool, request.filter) as conn:
            for sql, args in statements:
                doc = json.loads(
                    await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
                )[0]
                plan = doc["Plan"]
                parts.append(f"{rows_read(plan):,} rows/{buffers(plan):,} buf")
                if plans is not None:
                    text = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *args)
                    plans.append(f"-- {sql}\n-- {args}\n" + "\n".join(r[0] for r in text) + "\n")
    finally:
        await pool.close()
    return "; ".join(parts)


def _position(e: billing_pb2.LogEntry) -> billing_pb2.LogPosition:
    return billing_pb2.LogPosition(created_at=e.created_at, id=e.id)


async def log_pages(
    pool: asyncpg.Pool, dsn: str, w: World, day: int, repeat: int, plans: list[str] | None
) -> list[Timing]:
    """The console's page (``list_logs``: capped count + page of 50), per filter: the first
    page, the next one by cursor, the last (oldest) and the one before it by cursor, and One
    API's ``p=0``; each with what its statements read (EXPLAIN)."""
    size = 50
    filters = {
        "unfiltered": billing_pb2.LogFilter(),
        "user (the busiest)": billing_pb2.LogFilter(user_id=w.user_id(0)),
        "user (a quiet one)": billing_pb2.LogFilter(user_id=w.user_id(w.users // 2)),
        "key": billing_pb2.LogFilter(token_id=w.token_id(0, 0)),
        "key by name, within a user (/api/log/self)": billing_pb2.LogFilter(
            user_id=w.user_id(0), token_name="key0"
        ),
        "model": billing_pb2.LogFilter(model_name=MODELS[2][0]),
        "channel": billing_pb2.LogFilter(channel_id=w.model_channels[4][0]),
        "type consume": billing_pb2.LogFilter(type=2),
        "type top-up": billing_pb2.LogFilter(type=1),
        "one day": billing_pb2.LogFilter(
            start_timestamp=day * DAY, end_timestamp=(day + 1) * DAY - 1
        ),
        "user + one day": billing_pb2.LogFilter(
            user_id=w.user_id(0), start_timestamp=day * DAY, end_timestamp=(day + 1) * DAY - 1
        ),
    }
    out = []
    for label, f in filters.items():
        first = await list_logs(pool, billing_pb2.ListLogsRequest(filter=f, page_size=size))
        last = await list_logs(
            pool, billing_pb2.ListLogsRequest(filter=f, page_size=size, oldest=True)
        )
        requests = {
            "first page": billing_pb2.ListLogsRequest(filter=f, page_size=size),
            "next page (cursor)": billing_pb2.ListLogsRequest(
                filter=f, page_size=size, older_than=_position(first.logs[-1])
            ),
            "last page": billing_pb2.ListLogsRequest(filter=f, page_size=size, oldest=True),
            "before the last (cursor)": billing_pb2.ListLogsRequest(
                filter=f, page_size=size, newer_than=_position(last.logs[0])
            ),
            "One API p=0": billing_pb2.ListLogsRequest(filter=f, page=0, page_size=size),
        }
        for which, request in requests.items():

            async def run(request: billing_pb2.ListLogsRequest = request) -> str:
                r = await list_logs(pool, request)
                if not r.logs and r.total:
                    raise RuntimeError(f"empty page {request}")
                return f"{r.total:,}{'+' if r.total_capped else ''} rows match"

            if plans is not None:
                plans.append(f"### {label}, {which}\n")
            timing = await timed(f"{label}, {which}", run, repeat, 30.0)
            timing.note += "; read: " + await explained(dsn, request, plans)
            out.append(timing)
    return out


async def stats(pool: asyncpg.Pool, w: World, days: list[int], repeat: int) -> list[Timing]:
    whole = billing_pb2.UsageFilter()
    partial = billing_pb2.UsageFilter(
        start_timestamp=days[1] * DAY + 3600, end_timestamp=days[-2] * DAY + 7200
    )
    user = billing_pb2.UsageFilter(user_id=w.user_id(0))
    groups = {
        "by day": billing_pb2.STATS_GROUP_BY_DAY,
        "by model": billing_pb2.STATS_GROUP_BY_MODEL,
        "by day and model": billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL,
    }
    out = []
    for label, f in (
        ("all days", whole),
        ("partial days at both ends", partial),
        ("one user", user),
    ):
        for glabel, g in groups.items():
            request = billing_pb2.UsageStatsRequest(filter=f, group_by=g)

            async def run(request: billing_pb2.UsageStatsRequest = request) -> str:
                r = await usage_stats(pool, request)
                return f"{len(r.rows)} rows, {r.total.requests:,} requests"

            out.append(await timed(f"{label}, {glabel}", run, repeat, 30.0))
    return out


async def export(pool: asyncpg.Pool, w: World, day: int) -> tuple[int, int, float]:
    f = billing_pb2.LogFilter(
        channel_id=w.model_channels[0][0],
        start_timestamp=day * DAY,
        end_timestamp=(day + 1) * DAY - 1,
    )
    started, lines, size = time.perf_counter(), 0, 0
    async for chunk in export_csv(pool, f):
        lines += chunk.count(b"\n")
        size += len(chunk)
    return lines - 1, size, time.perf_counter() - started


async def retention(conn: Db, pool: asyncpg.Pool, day: int) -> dict[str, float]:
    """Drop ``day``'s partition as billing's retention does, and DELETE the same rows, in
    batches as before partitioning, from a plain table holding that day and the next."""
    cols = ", ".join(f'"{c}"' for c in COPY_COLUMNS)
    await conn.execute(
        "CREATE TABLE bench_plain (LIKE logs INCLUDING DEFAULTS);"
        " ALTER TABLE bench_plain ADD PRIMARY KEY (id);"
        " ALTER TABLE bench_plain ADD UNIQUE (request_id);"
        " CREATE INDEX ON bench_plain (created_at);"
        " CREATE INDEX ON bench_plain (user_id, created_at);"
        " CREATE INDEX ON bench_plain (token_id, created_at);"
        " CREATE INDEX ON bench_plain (client_request_id) WHERE client_request_id <> ''"
    )
    for d in (day, day + 1):
        await conn.execute(f"INSERT INTO bench_plain ({cols}) SELECT {cols} FROM {day_table(d)}")
    await conn.execute("VACUUM ANALYZE bench_plain")
    rows = await conn.fetchval(f"SELECT count(*) FROM {day_table(day)}")
    before = (day + 1) * DAY
    t = time.perf_counter()
    deleted = 0
    while True:
        # billing's batched DELETE (unigate_billing.partitions, as logretention ran it on the
        # whole table before 0017).
        status = await conn.execute(
            "DELETE FROM bench_plain WHERE ctid = ANY(ARRAY(SELECT ctid FROM bench_plain"
            f" WHERE created_at < $1 LIMIT {BATCH_ROWS}))",
            before,
        )
        count = int(status.rsplit(" ", 1)[-1])
        deleted += count
        if count < BATCH_ROWS:
            break
    delete_s = time.perf_counter() - t
    if deleted != rows:
        raise RuntimeError(f"DELETE removed {deleted} rows, the day has {rows}")
    t = time.perf_counter()
    await conn.execute("VACUUM bench_plain")  # what the DELETE leaves to do
    vacuum_s = time.perf_counter() - t
    await conn.execute("DROP TABLE bench_plain")
    t = time.perf_counter()
    gone = await forget_consume_before(pool, before)
    drop_s = time.perf_counter() - t
    if gone.dropped_days != 1 or gone.dropped_rows != rows:
        raise RuntimeError(f"retention dropped {gone}, expected one day of {rows} rows")
    return {"rows": rows, "delete_s": delete_s, "vacuum_s": vacuum_s, "drop_s": drop_s}


async def conversion(rows: int, days: int, w: World) -> tuple[int, float]:
    """Migration 0017 on an unpartitioned ``logs`` of ``rows`` rows: (rows, seconds)."""
    db_name = f"unigate_bench_ledger_conv_{secrets.token_hex(4)}"
    dsn = with_database(ADMIN_DSN, db_name)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            # Up to the last migration before 0017, as migrate() would have applied them.
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
            await conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, name, sql in _migrations():
                if version >= 17:
                    break
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2)", version, name
                    )
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
        finally:
            await conn.close()
        db = Db(dsn)
        try:
            await seed_world(db, w)
            today = int(time.time()) // DAY
            await copy_history(
                db, Generator(w, 0.005), rows, list(range(today - days, today)), "logs"
            )
            await db.execute("VACUUM ANALYZE logs")
        finally:
            await db.close()
        t = time.perf_counter()
        applied = await migrate(dsn)
        seconds = time.perf_counter() - t
        if not applied or not applied[0].startswith("0017"):
            raise RuntimeError(f"expected 0017 to be applied, got {applied}")
        conn = await asyncpg.connect(dsn)
        try:
            after = await conn.fetchval("SELECT count(*) FROM logs")
        finally:
            await conn.close()
        if after != rows:
            raise RuntimeError(f"0017 kept {after} of {rows} rows")
        return rows, seconds
    finally:
        await drop_database(ADMIN_DSN, db_name)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


async def make_history(
    conn: Db,
    args: argparse.Namespace,
    w: World,
    days: list[int],
    say: Callable[..., None],
) -> None:
    have = await conn.run(consume_days)
    for d in days:
        if d not in have:
            await conn.execute(
                f"CREATE TABLE {day_table(d)} PARTITION OF logs_consume"
                f" FOR VALUES FROM ({d * DAY}) TO ({(d + 1) * DAY})"
            )
    await seed_world(conn, w)
    say(f"## History: {args.rows:,} rows over {args.days} days")
    say()
    say(
        f"{args.users:,} users (Zipf-like traffic), {args.users * args.tokens_per_user:,}"
        f" keys, {args.channels} channels, {len(MODELS)} models;"
        f" {args.other_share:.1%} top-up and management rows. Load at the start: {load()}."
    )
    say()
    seconds, in_copy = await copy_history(conn, Generator(w, args.other_share), args.rows, days)
    t = time.perf_counter()
    await conn.execute(ROLLUPS)
    await conn.execute(USED)
    rollup_s = time.perf_counter() - t
    t = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    vacuum_s = time.perf_counter() - t
    await check_consistent(conn)
    table, index = await sizes(conn)
    rollups = await conn.fetchval("SELECT count(*) FROM usage_daily")
    say("| step | seconds | rows/s | load after |")
    say("|---|---:|---:|---|")
    say(
        cells(
            "generate + COPY (indexes in place)",
            f"{seconds:,.0f}",
            f"{args.rows / seconds:,.0f}",
            load(),
        )
    )
    say(f"| of which Postgres' COPY | {in_copy:,.0f} | {args.rows / in_copy:,.0f} | |")
    say(
        cells(
            f"rollups and used quota from the rows ({rollups:,} rollup rows)",
            f"{rollup_s:,.0f}",
            "",
            "",
        )
    )
    say(f"| VACUUM ANALYZE | {vacuum_s:,.0f} | | |")
    say()
    rollup_size = await conn.fetchval("SELECT pg_total_relation_size('usage_daily')")
    say(
        f"`logs`: {gb(table)} of table, {gb(index)} of indexes ({gb(table + index)});"
        f" `usage_daily`: {gb(rollup_size)}."
        " History consistent (rollups = rows, used quota = rollups)."
    )
    say()


async def bench(args: argparse.Namespace) -> list[str]:
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    w = World(args.users, args.tokens_per_user, args.channels)
    db_name = args.history or f"unigate_bench_ledger_{secrets.token_hex(4)}"
    dsn = with_database(ADMIN_DSN, db_name)
    if not args.history:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{db_name}"')
        finally:
            await admin.close()
    try:
        await migrate(dsn)
        today = int(time.time()) // DAY
        conn = Db(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=4)
        try:
            if args.history:
                # A history kept by an earlier run (--keep): its days that still hold rows.
                days = []
                for d, table in sorted((await conn.run(consume_days)).items()):
                    if d < today and await conn.fetchval(f"SELECT EXISTS (SELECT FROM {table})"):
                        days.append(d)
                n = await conn.fetchval("SELECT max(id) FROM logs")
                say(f"## History: kept database {db_name}, ~{n:,} rows over {len(days)} days")
                say()
            else:
                days = list(range(today - args.days, today))
                await make_history(conn, args, w, days, say)
            middle = days[len(days) // 2]
            steps = set(args.steps.split(","))
            if "consumer" in steps:
                say("## Consumer throughput")
                say()
                say("| table | events | batch | seconds | events/s | load |")
                say("|---|---:|---:|---:|---:|---|")
                for label, measure in (
                    ("with the history", lambda: measure_consumer_in(dsn, args.batch, args.events)),
                    ("empty", lambda: measure_consumer_empty(args.batch, args.events)),
                ):
                    r = await measure()
                    rate = f"{r.events / r.seconds:,.0f}"
                    say(cells(label, f"{r.events:,}", args.batch, f"{r.seconds:.2f}", rate, load()))
                say()

            if "pages" in steps:
                say("## `/api/log/` pages (list_logs: capped count + page of 50)")
                say()
                say(f"Load at the start: {load()}.")
                say()
                say("| query | runs | p50 ms | p95 ms | p99 ms | |")
                say("|---|---:|---:|---:|---:|---|")
                plans: list[str] | None = [] if args.plans else None
                for timing in await log_pages(pool, dsn, w, middle, args.repeat, plans):
                    out.append(timing.row())
                if args.plans and plans is not None:
                    args.plans.write_text("\n".join(plans))
                    print(f"plans written to {args.plans}")
                say()

            if "stats" in steps:
                say("## Statistics (usage_stats)")
                say()
                say(f"Load at the start: {load()}.")
                say()
                say("| query | runs | p50 ms | p95 ms | p99 ms | |")
                say("|---|---:|---:|---:|---:|---|")
                for timing in await stats(pool, w, days, args.repeat):
                    out.append(timing.row())
                say()

            if "export" in steps:
                say("## CSV export (export_csv: one channel, one day)")
                say()
                n, size, s = await export(pool, w, middle)
                mb = size / 1024**2
                say(
                    f"{n:,} rows, {mb:.1f} MB in {s:.2f} s:"
                    f" **{n / s:,.0f} rows/s** (load {load()})."
                )
                say()

            if "retention" in steps:
                say("## Retention: one day")
                say()
                r = await retention(conn, pool, days[0])
                say("| how | rows | seconds | load |")
                say("|---|---:|---:|---|")
                n_rows = f"{r['rows']:,}"
                say(cells("batched DELETE (10,000 a batch), plain table, before 0017", n_rows,
                          f"{r['delete_s']:.2f}", load()))  # fmt: skip
                say(cells("+ the VACUUM it leaves to do", "", f"{r['vacuum_s']:.2f}", ""))
                say(cells("partition dropped (forget_consume_before: count + DROP TABLE)", n_rows,
                          f"{r['drop_s']:.3f}", load()))  # fmt: skip
                say()
        finally:
            await pool.close()
            await conn.close()
    finally:
        if args.keep or args.history:
            print(f"kept database {db_name}")
        else:
            await drop_database(ADMIN_DSN, db_name)

    if args.conversion_rows:
        say("## Migration 0017 on an unpartitioned table")
        say()
        n, s = await conversion(args.conversion_rows, min(args.days, 30), w)
        say(f"{n:,} rows converted in {s:.1f} s: **{n / s:,.0f} rows/s** (load {load()}).")
        say()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000_000, help="log rows of history")
    parser.add_argument("--days", type=int, default=30, help="days the history spans")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tokens-per-user", type=int, default=3)
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--other-share", type=float, default=0.005, help="top-up/manage rows")
    parser.add_argument("--events", type=int, default=5000, help="consumer events")
    parser.add_argument("--batch", type=int, default=100, help="consumer messages per fetch")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each query")
    parser.add_argument("--conversion-rows", type=int, default=2_000_000, help="0 to skip")
    parser.add_argument("--keep", action="store_true", help="keep the history database")
    parser.add_argument(
        "--steps",
        default="consumer,pages,stats,export,retention",
        help="what to measure on the history (comma-separated)",
    )
    parser.add_argument(
        "--history", metavar="DATABASE", help="measure on a history kept by --keep (no COPY)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--plans", type=Path, help="write EXPLAIN (ANALYZE, BUFFERS) of every log page here"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("unigate.bus").setLevel(logging.ERROR)
    started = dt.datetime.now(dt.UTC)
    lines = uvloop.run(bench(args))
    header = [
        "# Ledger benchmark results",
        "",
        "Written by `bench/ledger.py` (see `bench/README.md`).",
        "",
        f"- date: {started:%Y-%m-%d %H:%M:%S} UTC",
        f"- nproc: {os.cpu_count()}, shared with other work (load averages with each figure)",
        f"- python: {platform.python_version()}",
        f"- run: `bench/ledger.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    args.results.write_text("\n".join(header + lines) + "\n")
    print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
