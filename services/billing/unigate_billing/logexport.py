"""CSV export of log rows, produced chunk by chunk.

Rows are read by keyset pagination (``id < last id seen``, newest first) rather than through
one cursor: each chunk is a short query on the primary key, so an export that a slow client
takes an hour to read holds no transaction (and no snapshot that stops vacuum) open, and never
more than one chunk is in memory. The first chunk fixes the newest id, so rows inserted while
the export runs are not mixed into it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator

import asyncpg

from unigate.v1 import billing_pb2
from unigate_billing.logfilter import Params, log_conditions, where_clause

CHUNK_ROWS = 2000

# (CSV header, SQL expression) in column order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("created_at", "created_at"),
    ("type", "type"),
    ("request_id", "coalesce(request_id, '')"),
    ("client_request_id", "client_request_id"),
    ("user_id", "user_id"),
    ("username", "username"),
    ("token_id", "token_id"),
    ("token_name", "token_name"),
    ("channel_id", "channel_id"),
    ("model_name", "model_name"),
    ("upstream_model", "upstream_model"),
    ("endpoint", "endpoint"),
    ("group", '"group"'),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("cached_tokens", "cached_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("unit", "unit"),
    ("quantity", "quantity"),
    ("estimated", "estimated"),
    ("quota", "quota"),
    ("latency_ms", "latency_ms"),
    ("first_token_ms", "first_token_ms"),
    ("stream", "is_stream"),
    ("status_code", "status_code"),
    ("error_code", "error_code"),
    ("content", "content"),
    # Content logging's bodies (request_contents), "" where none were kept.
    (
        "request_body",
        "coalesce((SELECT c.request_body FROM request_contents c"
        " WHERE c.request_id = logs.request_id), '')",
    ),
    (
        "response_body",
        "coalesce((SELECT c.response_body FROM request_contents c"
        " WHERE c.request_id = logs.request_id), '')",
    ),
)
# A chunk is sent once it holds this much, whatever its rows: bodies make rows large, and a
# chunk must stay within gRPC's message limit.
CHUNK_BYTES = 1024 * 1024


# A cell a spreadsheet would read as a formula (OWASP's CSV injection rule): = + - @, and
# tab and carriage return, which some applications skip before looking for one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: object) -> object:
    # Booleans as 0/1 rather than Python's True/False: neutral for spreadsheets and parsers.
    if isinstance(value, bool):
        return int(value)
    # Text (usernames, key and model names, content) is the users': a leading quote makes
    # the spreadsheet show it as text instead of running it. Numbers are never text here.
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _time(created_at: int) -> str:
    return dt.datetime.fromtimestamp(created_at, dt.UTC).isoformat()


async def export_csv(
    pool: asyncpg.Pool, f: billing_pb2.LogFilter, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[bytes]:
    """The header, then the rows, as UTF-8 CSV in chunks of at most ``chunk_rows`` rows."""
    p = Params()
    conditions = log_conditions(p, f)  # raises InvalidFilter before anything is sent
    header = [name for name, _ in COLUMNS]
    header.insert(2, "time")
    buf = io.StringIO()
    writer = csv.writer(buf)  # RFC 4180: quotes fields with commas, quotes or line breaks
    writer.writerow(header)
    select = ", ".join(expr for _, expr in COLUMNS)
    last_id: int | None = None
    while True:
        cp = Params(list(p.values))
        where = list(conditions)
        if last_id is not None:
            where.append(f"id < {cp.add(last_id)}")
        rows = await pool.fetch(
            f"SELECT {select} FROM logs {where_clause(where)}"
            f" ORDER BY id DESC LIMIT {cp.add(chunk_rows)}",
            *cp.values,
        )
        for r in rows:
            values = [_csv_value(v) for v in r.values()]
            values.insert(2, _time(r["created_at"]))
            writer.writerow(values)
            if buf.tell() >= CHUNK_BYTES:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        data = buf.getvalue()
        if data:
            yield data.encode()
            buf.seek(0)
            buf.truncate()
        if len(rows) < chunk_rows:
            return
        last_id = rows[-1]["id"]
