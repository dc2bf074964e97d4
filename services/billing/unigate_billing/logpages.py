"""billing's ``ListLogs``: one page of log rows, newest first, at a cost that does not grow with
the table.

The order is (created_at, id), newest first: every per-day index on ``logs`` ends in
``created_at`` ((user | token | channel | model, created_at), and created_at alone), so a page
of any single filter is the first entries of an index range walked backwards through the days,
and a page next to a known row (a keyset cursor: ``older_than``/``newer_than``) starts at that
row's place in the same indexes. The last page is the oldest rows read forwards, then reversed.
The total is counted over at most ``TOTAL_CAP + 1`` matching rows: exact up to the cap,
"at least the cap" beyond it (One API's own list has no total at all; New API counts every
matching row, which is what made a page of 10 million rows cost half a second here).

One API's ``p`` (``page``) still works: an OFFSET from the newest end, or from the oldest end
for a page in the older half when the total is exact; beyond the cap it walks the rows before
the page, so it costs what the page's depth costs, as it always did for One API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from unigate.v1 import billing_pb2
from unigate_billing.logfilter import InvalidFilter, Params, log_conditions, where_clause

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Counting stops here: at most this many index entries are read for the total.
TOTAL_CAP = 10_000

_LOG_COLUMNS = (
    "id, type, coalesce(request_id, '') AS request_id, user_id, username, token_id, token_name,"
    ' channel_id, model_name, upstream_model, endpoint, "group", prompt_tokens,'
    " completion_tokens, cached_tokens, cache_write_tokens, quota, latency_ms, first_token_ms,"
    " is_stream, status_code, error_code, created_at, content, estimated, unit, quantity,"
    " client_request_id"
)
# Content logging's bodies, beside a row (request_contents, by request id).
_CONTENT_COLUMNS = "".join(
    f", coalesce((SELECT c.{body} FROM request_contents c"
    f" WHERE c.request_id = logs.request_id), '') AS {body}"
    for body in ("request_body", "response_body")
)
# A page with bodies stays within gRPC's message limit (unigate.content_log.MAX_MAX_BYTES).
CONTENT_PAGE_SIZE = 10

NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
OLDEST_FIRST = "ORDER BY created_at, id"


def _entry(r: asyncpg.Record) -> billing_pb2.LogEntry:
    return billing_pb2.LogEntry(
        id=r["id"],
        type=r["type"],
        request_id=r["request_id"],
        user_id=r["user_id"],
        username=r["username"],
        token_id=r["token_id"],
        token_name=r["token_name"],
        channel_id=r["channel_id"],
        model=r["model_name"],
        upstream_model=r["upstream_model"],
        endpoint=r["endpoint"],
        group=r["group"],
        prompt_tokens=r["prompt_tokens"],
        completion_tokens=r["completion_tokens"],
        cached_tokens=r["cached_tokens"],
        cache_write_tokens=r["cache_write_tokens"],
        quota=r["quota"],
        latency_ms=r["latency_ms"],
        first_token_ms=r["first_token_ms"],
        stream=r["is_stream"],
        status_code=r["status_code"],
        error_code=r["error_code"],
        created_at=r["created_at"],
        content=r["content"],
        estimated=r["estimated"],
        unit=r["unit"],
        quantity=r["quantity"],
        client_request_id=r["client_request_id"],
        request_body=r.get("request_body") or "",
        response_body=r.get("response_body") or "",
    )


def older_than(p: Params, pos: billing_pb2.LogPosition, *, inclusive: bool = False) -> str:
    """Rows after ``pos`` newest first. ``created_at <= c`` is implied by the row comparison
    but spelled out: it is what bounds the index ranges and prunes the later days."""
    c, i = p.add(pos.created_at), p.add(pos.id)
    return f"created_at <= {c} AND (created_at, id) <{'=' if inclusive else ''} ({c}, {i})"


def newer_than(p: Params, pos: billing_pb2.LogPosition, *, inclusive: bool = False) -> str:
    c, i = p.add(pos.created_at), p.add(pos.id)
    return f"created_at >= {c} AND (created_at, id) >{'=' if inclusive else ''} ({c}, {i})"


def _position(r: asyncpg.Record) -> billing_pb2.LogPosition:
    return billing_pb2.LogPosition(created_at=r["created_at"], id=r["id"])


async def _resolved(
    conn: asyncpg.Connection, f: billing_pb2.LogFilter
) -> billing_pb2.LogFilter | None:
    """The filter with a username and a key name turned into ids (None: nothing can match).

    By id, the condition is an equality on an index's first column, whose entries are in
    created_at order; ``token_id IN (SELECT ...)`` is not, and made Postgres read every row of
    the key and sort them. A name shared by several keys stays a set (their rows are sorted:
    the cost of those keys' rows, not of the table)."""
    out = billing_pb2.LogFilter()
    out.CopyFrom(f)
    if f.username:
        uid = await conn.fetchval("SELECT id FROM users WHERE username = $1", f.username)
        if uid is None or (f.user_id and f.user_id != uid):
            return None
        out.user_id, out.username = uid, ""
    if f.token_name:
        # A row's key is its user's: with the user known, only their keys of that name (one,
        # usually; across users a name such as "default" is common).
        ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM tokens WHERE name = $1 AND (user_id = $2 OR $2 = 0) LIMIT 2",
                f.token_name,
                out.user_id,
            )
        ]
        if not ids:
            return None
        if len(ids) == 1 and f.token_id in (0, ids[0]):
            out.token_id, out.token_name = ids[0], ""
            # The key was found among the user's own, and a row's key is its user's: the
            # user condition is implied. Left in, the planner took the two for independent,
            # expected a handful of rows, and walked the whole time index for them (2.6 s
            # for the busiest user's key at 3 M rows).
            out.user_id = 0
    return out


async def _capped_count(conn: asyncpg.Connection, clause: str, values: list[object]) -> int:
    # Ordered, so that each day's part is an index scan that stops where the count does; an
    # unordered LIMIT let the planner build a bitmap of every match of a day first (EXPLAIN).
    return int(
        await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM logs {clause}"
            f" ORDER BY created_at DESC LIMIT {TOTAL_CAP + 1}) AS m",
            *values,
        )
    )


# Every statement of a page walks an index in the page's order and stops at its LIMIT; the
# planner is kept from anything else. Misled by filters that go together (a key implies its
# user, a channel its models), it estimated a handful of rows and chose bitmap scans of
# every day and a sort: 3.4 s at 3 M rows for a user's key by name (bench). And it plans for
# the values at hand: a prepared statement reused (asyncpg prepares every statement; Postgres
# turns to a generic plan after five runs) was planned for an average user, and counted the
# busiest one's rows through a sort of all of them (250-340 ms at 3 M rows).
# A lookup by request id (either id: an OR of two indexes, a bitmap) or a keyword search (an OR
# over the content and the ids) is left to the planner's choice of plan shape: its rows are
# found by those conditions, not by walking the order.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}
PAGE_SETTINGS = {
    **CUSTOM_PLANS,
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
}


def walks_the_order(f: billing_pb2.LogFilter) -> bool:
    """Whether a page of this filter is found by walking an index in the page's order."""
    return not (f.request_id or f.keyword)


@asynccontextmanager
async def page_session(
    pool: asyncpg.Pool, f: billing_pb2.LogFilter
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in one read-only snapshot (the count and the page agree), planned as a
    page of ``f`` must be (PAGE_SETTINGS, or only CUSTOM_PLANS)."""
    settings = PAGE_SETTINGS if walks_the_order(f) else CUSTOM_PLANS
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for name, value in settings.items():
            await conn.execute(f"SET LOCAL {name} = {value}")
        yield conn


async def list_logs(
    pool: asyncpg.Pool, request: billing_pb2.ListLogsRequest
) -> billing_pb2.ListLogsResponse:
    if request.page < 0 or request.page_size < 0:
        raise InvalidFilter("page and page_size cannot be negative")
    cursors = [
        request.HasField("older_than"),
        request.HasField("newer_than"),
        request.oldest,
    ]
    if sum(cursors) > 1:
        raise InvalidFilter("older_than, newer_than and oldest cannot be combined")
    log_conditions(Params(), request.filter)  # refuses a bad filter before any query
    async with page_session(pool, request.filter) as conn:
        return await _page(conn, request, keyset=any(cursors))


async def _page(
    conn: asyncpg.Connection, request: billing_pb2.ListLogsRequest, *, keyset: bool
) -> billing_pb2.ListLogsResponse:
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    columns = _LOG_COLUMNS
    if request.with_content:
        size = min(size, CONTENT_PAGE_SIZE)
        columns += _CONTENT_COLUMNS
    page = 0 if keyset else request.page
    empty = billing_pb2.ListLogsResponse(page=page, page_size=size)
    f = await _resolved(conn, request.filter)
    if f is None:
        return empty
    p = Params()
    conditions = log_conditions(p, f)
    counted = await _capped_count(conn, where_clause(conditions), p.values)
    total, capped = min(counted, TOTAL_CAP), counted > TOTAL_CAP
    if not counted:
        return empty

    Condition = Callable[[Params], str]

    async def fetch(
        extra: list[Condition], order: str, limit: int, offset: int = 0
    ) -> list[asyncpg.Record]:
        # LIMIT and OFFSET are numbers of ours, written as such: the planner sees them.
        q = Params(list(p.values))
        sql = (
            f"SELECT {columns} FROM logs {where_clause([*conditions, *(c(q) for c in extra)])}"
            f" {order} LIMIT {int(limit)}"
        )
        if offset:
            sql += f" OFFSET {int(offset)}"
        return list(await conn.fetch(sql, *q.values))

    async def exists(extra: Condition, order: str) -> bool:
        # The nearest such row, in index order, rather than EXISTS: EXISTS lets the planner
        # take any match, by a bitmap of a whole day or a sequential scan.
        q = Params(list(p.values))
        sql = f"SELECT 1 FROM logs {where_clause([*conditions, extra(q)])} {order} LIMIT 1"
        return await conn.fetchval(sql, *q.values) is not None

    if request.HasField("older_than"):
        pos = request.older_than
        rows = await fetch([lambda q: older_than(q, pos)], NEWEST_FIRST, size + 1)
        has_older = len(rows) > size
        rows = rows[:size]
        # Rows beyond the page's first row (the cursor's own row, when the page is empty).
        edge = _position(rows[0]) if rows else pos
        has_newer = await exists(lambda q: newer_than(q, edge, inclusive=not rows), OLDEST_FIRST)
    elif request.HasField("newer_than"):
        pos = request.newer_than
        rows = await fetch([lambda q: newer_than(q, pos)], OLDEST_FIRST, size + 1)
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        edge = _position(rows[-1]) if rows else pos
        has_older = await exists(lambda q: older_than(q, edge, inclusive=not rows), NEWEST_FIRST)
    elif request.oldest:
        rows = (await fetch([], OLDEST_FIRST, size))[::-1]
        has_older, has_newer = False, counted > len(rows)
    else:
        offset = page * size
        has_newer = offset > 0
        if not capped and offset >= total:
            rows, has_older = [], False
        elif not capped and offset * 2 > total:
            # A page in the older half (of an exact total) is read from the oldest end: an
            # OFFSET walks and discards every row before the page.
            rows = await fetch(
                [], OLDEST_FIRST, min(size, total - offset), max(0, total - offset - size)
            )
            rows.reverse()
            has_older = offset + len(rows) < total
        else:
            rows = await fetch([], NEWEST_FIRST, size + 1, offset)
            has_older = len(rows) > size
            rows = rows[:size]
    return billing_pb2.ListLogsResponse(
        total=total,
        total_capped=capped,
        page=page,
        page_size=size,
        logs=[_entry(r) for r in rows],
        has_older=has_older,
        has_newer=has_newer,
    )
