"""ListLogs' pages against the real Postgres: whichever end a page is read from (the newer half
from the newest row down, the older half from the oldest row up), every page is exactly its
slice of the rows newest first, for any total and page size, filtered or not."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_DSN
from unigate.db.migrate import ensure_database, migrate
from unigate.v1 import billing_pb2
from unigate_billing.queries import list_logs

ROWS = 203  # odd, so that the last page of most sizes is partial


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    name = "unigate_pages_" + secrets.token_hex(4)
    dsn = urlunsplit(urlsplit(PG_ADMIN_DSN)._replace(path=f"/{name}"))
    await ensure_database(dsn)
    await migrate(dsn)
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert p is not None
    now = int(time.time())
    # Consume rows of users 5 and 6 interleaved, and a few top-ups (another partition).
    await p.executemany(
        "INSERT INTO logs (request_id, type, created_at, user_id, quota)"
        " VALUES ($1, $2, $3, $4, 1)",
        [
            (None if i % 20 == 0 else f"r{i}", 1 if i % 20 == 0 else 2, now - ROWS + i, 5 + i % 2)
            for i in range(ROWS)
        ],
    )
    yield p
    await p.close()
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "log_filter",
    [billing_pb2.LogFilter(), billing_pb2.LogFilter(user_id=6), billing_pb2.LogFilter(type=2)],
    ids=["all", "user", "consume"],
)
async def test_every_page_is_its_slice_newest_first(
    pool: asyncpg.Pool, log_filter: billing_pb2.LogFilter
) -> None:
    conditions = []
    if log_filter.user_id:
        conditions.append(f"user_id = {log_filter.user_id}")
    if log_filter.type:
        conditions.append(f"type = {log_filter.type}")
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    newest_first = [
        r["id"] for r in await pool.fetch(f"SELECT id FROM logs {where} ORDER BY id DESC")
    ]
    assert len(newest_first) > 50
    for size in (1, 7, 50, 100, 1000):
        seen: list[int] = []
        page = 0
        while True:
            resp = await list_logs(
                pool, billing_pb2.ListLogsRequest(filter=log_filter, page=page, page_size=size)
            )
            assert resp.total == len(newest_first)
            ids = [e.id for e in resp.logs]
            assert ids == newest_first[page * size : (page + 1) * size], (size, page)
            if not ids:
                break
            seen += ids
            page += 1
        assert seen == newest_first
        assert page == -(-len(newest_first) // size)
