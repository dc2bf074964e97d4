"""ListLogs' pages against the real Postgres.

Rows are written in shuffled order with three to a second, so the id order is not the time
order: every page must be its slice of the rows newest first by (created_at, id), whichever
way it is asked for (One API's ``p``, read from either end; the keyset cursors ``older_than``,
``newer_than`` and ``oldest``), for every filter the console has, with the total exact up to
the cap and capped beyond it. The last test reads the plans: no statement of a page reads more
rows than the page and the capped count need, however many rows the table holds.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_DSN
from unigate.db.migrate import ensure_database, migrate
from unigate.db.plans import StatementLog, rows_read
from unigate.v1 import billing_pb2
from unigate_billing import logpages
from unigate_billing.logfilter import InvalidFilter
from unigate_billing.logpages import list_logs
from unigate_billing.partitions import DAY, ensure_days

ROWS = 203  # odd, so that the last page of most sizes is partial


@dataclass(frozen=True)
class Row:
    id: int
    type: int
    created_at: int
    user_id: int
    token_id: int
    model_name: str
    channel_id: int


@dataclass
class World:
    pool: asyncpg.Pool
    rows: list[Row]
    users: dict[str, int]
    tokens: dict[str, list[int]]
    start: int


async def _database() -> tuple[str, str]:
    name = "unigate_pages_" + secrets.token_hex(4)
    dsn = urlunsplit(urlsplit(PG_ADMIN_DSN)._replace(path=f"/{name}"))
    await ensure_database(dsn)
    await migrate(dsn)
    return name, dsn


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _user(p: asyncpg.Pool, name: str) -> int:
    return int(
        await p.fetchval(
            "INSERT INTO users (username, password_hash) VALUES ($1, 'x') RETURNING id", name
        )
    )


async def _token(p: asyncpg.Pool, user_id: int, name: str) -> int:
    return int(
        await p.fetchval(
            "INSERT INTO tokens (user_id, key_hash, key_prefix, name)"
            " VALUES ($1, $2, 'sk-', $3) RETURNING id",
            user_id,
            secrets.token_bytes(32),
            name,
        )
    )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    name, dsn = await _database()
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert p is not None
    users = {"ann": await _user(p, "ann"), "bob": await _user(p, "bob")}
    tokens = {
        "ann-only": [await _token(p, users["ann"], "ann-only")],
        # One name, two keys (of two users): the filter is then a set of keys.
        "shared": [
            await _token(p, users["ann"], "shared"),
            await _token(p, users["bob"], "shared"),
        ],
    }
    keys = [tokens["ann-only"][0], tokens["shared"][0], tokens["shared"][1]]
    start = int(time.time()) - ROWS
    specs = [
        (
            1 if i % 20 == 0 else 2,  # a few top-ups: the other partition
            start + i // 3,  # three rows to a second: ties broken by id
            users["ann"] if i % 2 else users["bob"],
            keys[0] if i % 2 and i % 4 == 1 else keys[1] if i % 2 else keys[2],
            "m-small" if i % 7 == 0 else "m-big",
            1 + i % 5,
        )
        for i in range(ROWS)
    ]
    random.Random(7).shuffle(specs)  # ids in another order than time
    rows = []
    for s in specs:
        rid = await p.fetchval(
            "INSERT INTO logs (request_id, type, created_at, user_id, token_id, model_name,"
            " channel_id, quota) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) RETURNING id",
            secrets.token_hex(8) if s[0] == 2 else None,
            *s,
        )
        rows.append(Row(rid, *s))
    yield World(p, rows, users, tokens, start)
    await p.close()
    await _drop(name)


def _cases(w: World) -> dict[str, tuple[billing_pb2.LogFilter, Callable[[Row], bool]]]:
    ann, bob = w.users["ann"], w.users["bob"]
    shared = set(w.tokens["shared"])
    lo, hi = w.start + 10, w.start + 40
    return {
        "all": (billing_pb2.LogFilter(), lambda r: True),
        "user": (billing_pb2.LogFilter(user_id=bob), lambda r: r.user_id == bob),
        "username": (billing_pb2.LogFilter(username="ann"), lambda r: r.user_id == ann),
        "key": (
            billing_pb2.LogFilter(token_name="ann-only"),
            lambda r: r.token_id == w.tokens["ann-only"][0],
        ),
        "shared key name": (
            billing_pb2.LogFilter(token_name="shared"),
            lambda r: r.token_id in shared,
        ),
        "model": (billing_pb2.LogFilter(model_name="m-small"), lambda r: r.model_name == "m-small"),
        "channel": (billing_pb2.LogFilter(channel_id=3), lambda r: r.channel_id == 3),
        "consume": (billing_pb2.LogFilter(type=2), lambda r: r.type == 2),
        "top-up": (billing_pb2.LogFilter(type=1), lambda r: r.type == 1),
        "time range": (
            billing_pb2.LogFilter(start_timestamp=lo, end_timestamp=hi),
            lambda r: lo <= r.created_at <= hi,
        ),
        "user + time range": (
            billing_pb2.LogFilter(user_id=ann, start_timestamp=lo, end_timestamp=hi),
            lambda r: r.user_id == ann and lo <= r.created_at <= hi,
        ),
    }


CASES = [
    "all",
    "user",
    "username",
    "key",
    "shared key name",
    "model",
    "channel",
    "consume",
    "top-up",
    "time range",
    "user + time range",
]


def _newest_first(w: World, keep: Callable[[Row], bool]) -> list[int]:
    return [
        r.id for r in sorted(w.rows, key=lambda r: (r.created_at, r.id), reverse=True) if keep(r)
    ]


def _position(e: billing_pb2.LogEntry) -> billing_pb2.LogPosition:
    return billing_pb2.LogPosition(created_at=e.created_at, id=e.id)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cap", [logpages.TOTAL_CAP, 40], ids=["exact", "capped"])
async def test_every_p_page_is_its_slice_newest_first(
    world: World, case: str, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One API's ``p``: page n is rows [n*size, (n+1)*size) newest first; past the cap the
    total says so, and the pages beyond it are still there."""
    monkeypatch.setattr(logpages, "TOTAL_CAP", cap)
    log_filter, keep = _cases(world)[case]
    expected = _newest_first(world, keep)
    assert expected
    for size in (7, 50, 1000):
        seen: list[int] = []
        page = 0
        while True:
            resp = await list_logs(
                world.pool,
                billing_pb2.ListLogsRequest(filter=log_filter, page=page, page_size=size),
            )
            assert resp.total == min(len(expected), cap)
            assert resp.total_capped == (len(expected) > cap)
            ids = [e.id for e in resp.logs]
            assert ids == expected[page * size : (page + 1) * size], (size, page)
            assert resp.has_newer == (page > 0)
            assert resp.has_older == ((page + 1) * size < len(expected)), (size, page)
            if not ids:
                break
            seen += ids
            page += 1
        assert seen == expected
        assert page == -(-len(expected) // size)


@pytest.mark.parametrize("case", CASES)
async def test_keyset_pages_walk_both_ways(world: World, case: str) -> None:
    """First page, then ``older_than`` the last row shown down to the oldest; ``oldest``, then
    ``newer_than`` the first row shown up to the newest: the same rows, the same pages."""
    log_filter, keep = _cases(world)[case]
    expected = _newest_first(world, keep)
    for size in (1, 50):

        async def ask(size: int = size, **cursor: Any) -> billing_pb2.ListLogsResponse:
            return await list_logs(
                world.pool,
                billing_pb2.ListLogsRequest(filter=log_filter, page_size=size, **cursor),
            )

        pages: list[list[int]] = []
        resp = await ask()
        assert not resp.has_newer
        while True:
            ids = [e.id for e in resp.logs]
            pages.append(ids)
            assert len(ids) == min(size, len(expected) - size * (len(pages) - 1))
            if not resp.has_older:
                break
            resp = await ask(older_than=_position(resp.logs[-1]))
            assert resp.has_newer and resp.page == 0
        assert [i for page in pages for i in page] == expected

        back: list[list[int]] = []
        resp = await ask(oldest=True)
        assert not resp.has_older
        assert resp.has_newer == (len(expected) > size)
        while True:
            ids = [e.id for e in resp.logs]
            back.append(ids)
            if not resp.has_newer:
                break
            resp = await ask(newer_than=_position(resp.logs[0]))
            assert resp.has_older
        # Read from the oldest end, the pages are whole from there (only the newest may be
        # short): the same rows, newest first.
        assert [i for page in reversed(back) for i in page] == expected
        assert back[0] == expected[-size:]
        assert all(len(page) == size for page in back[:-1])


async def test_refusals_and_names_that_match_nothing(world: World) -> None:
    pos = billing_pb2.LogPosition(created_at=world.start, id=1)
    for bad in (
        billing_pb2.ListLogsRequest(page=-1),
        billing_pb2.ListLogsRequest(older_than=pos, oldest=True),
        billing_pb2.ListLogsRequest(older_than=pos, newer_than=pos),
        billing_pb2.ListLogsRequest(filter=billing_pb2.LogFilter(type=9)),
    ):
        with pytest.raises(InvalidFilter):
            await list_logs(world.pool, bad)
    for f in (
        billing_pb2.LogFilter(username="nobody"),
        billing_pb2.LogFilter(token_name="no such key"),
        billing_pb2.LogFilter(username="ann", user_id=world.users["bob"]),
    ):
        resp = await list_logs(world.pool, billing_pb2.ListLogsRequest(filter=f))
        assert (resp.total, list(resp.logs), resp.has_older) == (0, [], False)


# --------------------------------------------------------------------------------------------
# What the page's statements read
# --------------------------------------------------------------------------------------------

SCAN_DAYS = 12
SCAN_ROWS_A_DAY = 2_000  # twice: 24,000 rows, then 48,000


async def _add_rows(pool: asyncpg.Pool, first: int, offset: int) -> None:
    """SCAN_ROWS_A_DAY rows a day over SCAN_DAYS days from ``first`` (+``offset`` seconds):
    20 users, 60 keys, 10 channels, 5 models, one top-up in 50."""
    n = SCAN_DAYS * SCAN_ROWS_A_DAY
    await pool.execute(
        "INSERT INTO logs (request_id, type, created_at, user_id, token_id, channel_id,"
        " model_name, quota)"
        " SELECT CASE WHEN g % 50 = 0 THEN NULL ELSE $3 || g END,"
        "        CASE WHEN g % 50 = 0 THEN 1 ELSE 2 END,"
        "        $1 + g * $2, 1 + g % 20, 1 + g % 60, 1 + g % 10, 'model-' || (g % 5), 1"
        f" FROM generate_series(0, {n - 1}) AS g",
        first + offset,
        SCAN_DAYS * DAY // n,
        f"r{offset}-",
    )
    await pool.execute("VACUUM ANALYZE logs")


@pytest.fixture
async def big() -> AsyncIterator[tuple[asyncpg.Pool, int, StatementLog, asyncpg.Pool]]:
    """A table of 12 days, its pool, and a pool whose statements are recorded."""
    name, dsn = await _database()
    p = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    recorder = StatementLog("logs")
    recorded = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=recorder.attach)
    assert p is not None and recorded is not None
    today = int(time.time()) // DAY
    for back in range(SCAN_DAYS):
        await ensure_days(p, (today - back) * DAY, ahead=0)
    first = (today - SCAN_DAYS + 1) * DAY
    await _add_rows(p, first, 0)
    yield p, first, recorder, recorded
    await recorded.close()
    await p.close()
    await _drop(name)


async def test_no_page_statement_grows_with_the_table(
    big: tuple[asyncpg.Pool, int, StatementLog, asyncpg.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXPLAIN ANALYZE of every statement a page runs (first and last pages, a page by cursor
    each way from the middle, One API's page 3), unfiltered and by each filter, on the table,
    then on twice as many rows over the same days: the rows their scans touch stay the same
    (bounded by the page, the count's cap and one merge entry per day), and stay far below
    the table's."""
    pool, first, recorder, recorded = big
    cap, size = 300, 20
    monkeypatch.setattr(logpages, "TOTAL_CAP", cap)
    middle = first + SCAN_DAYS * DAY // 2
    pos = billing_pb2.LogPosition(created_at=middle, id=SCAN_DAYS * SCAN_ROWS_A_DAY // 2)
    filters = {
        "unfiltered": billing_pb2.LogFilter(),
        "user": billing_pb2.LogFilter(user_id=3),
        "key": billing_pb2.LogFilter(token_id=7),
        "model": billing_pb2.LogFilter(model_name="model-2"),
        "channel": billing_pb2.LogFilter(channel_id=4),
        "consume": billing_pb2.LogFilter(type=2),
        "top-up": billing_pb2.LogFilter(type=1),
        "three days": billing_pb2.LogFilter(
            start_timestamp=middle - DAY, end_timestamp=middle + 2 * DAY
        ),
    }

    async def reads() -> dict[tuple[str, int], int]:
        out = {}
        for label, f in filters.items():
            recorder.statements.clear()
            for request in (
                billing_pb2.ListLogsRequest(filter=f, page_size=size),
                billing_pb2.ListLogsRequest(filter=f, page_size=size, oldest=True),
                billing_pb2.ListLogsRequest(filter=f, page_size=size, older_than=pos),
                billing_pb2.ListLogsRequest(filter=f, page_size=size, newer_than=pos),
                billing_pb2.ListLogsRequest(filter=f, page_size=size, page=3),
            ):
                resp = await list_logs(recorded, request)
                assert len(resp.logs) == size, (label, request)
                assert resp.total_capped and resp.total == cap, (label, request)
            # Planned as list_logs plans them.
            async with logpages.page_session(pool, f) as conn:
                for n, (sql, args) in enumerate(recorder.statements):
                    plan = json.loads(
                        await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
                    )[0]["Plan"]
                    out[label, n] = rows_read(plan)
        return out

    before = await reads()
    await _add_rows(pool, first, 7)
    after = await reads()

    # A lookup by request id (ours or the client's: an OR of two indexes, which the page
    # leaves to the planner): the one row, found by those indexes.
    recorder.statements.clear()
    by_id = billing_pb2.LogFilter(request_id="r0-101")
    resp = await list_logs(recorded, billing_pb2.ListLogsRequest(filter=by_id))
    assert [e.request_id for e in resp.logs] == ["r0-101"] and resp.total == 1
    async with logpages.page_session(pool, by_id) as conn:
        for sql, args in recorder.statements:
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))[
                0
            ]["Plan"]
            assert rows_read(plan) <= 10, (sql, rows_read(plan))
    rows = int(await pool.fetchval("SELECT count(*) FROM logs"))
    assert rows == 2 * SCAN_DAYS * SCAN_ROWS_A_DAY
    partitions = int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE c.relkind = 'r' AND c.relname LIKE 'logs%'"
        )
    )
    for key, read in after.items():
        # The same rows read within a merge entry per partition (where the first match of a
        # day falls), never the doubling a scan of the table would show.
        assert read <= before[key] + 2 * partitions, (key, before[key], read)
        assert read * 10 < rows, (key, read)
