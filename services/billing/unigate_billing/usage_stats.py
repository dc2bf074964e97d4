"""Usage statistics: totals of consume rows by day and/or model, for any time range.

The rollups (``usage_daily``, written in the same statement as the log rows) answer whole UTC
days; a range that starts or ends inside a day would be wrong by up to a day's usage if read
from them alone. So the range is split: the whole days inside it come from the rollups and the
partial days at its ends (at most two, each shorter than a day) from ``logs`` by its
``created_at`` index. The parts are disjoint in time, so their sums add up exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from unigate.v1 import billing_pb2
from unigate_billing.logfilter import InvalidFilter, Params, usage_dimensions, where_clause

DAY_SECONDS = 86400
_EPOCH = dt.date(1970, 1, 1)
_LOG_DAY = "date '1970-01-01' + (created_at / 86400)::int"
LOG_TYPE_CONSUME = 2


@dataclass(frozen=True, slots=True)
class Split:
    """Whole days [first_day, last_day] (None = unbounded that way; ``days`` False = none) and
    the second ranges, inclusive, to read from the log rows instead."""

    days: bool
    first_day: dt.date | None
    last_day: dt.date | None
    partial: tuple[tuple[int, int], ...]


# The first second of the last day a date can name (9999-12-30): beyond it no day is a date,
# and no row lies there.
_MAX_SECOND = ((dt.date.max - _EPOCH).days - 1) * DAY_SECONDS


def split_range(start: int, end: int) -> Split:
    """``start``/``end`` are inclusive unix seconds, 0 = unbounded. Bounds no day can hold
    (a client's ``end_timestamp`` of 2^63 - 1) mean unbounded for an end, and a range of
    log rows only (which matches none) for a start past the last date or a negative end."""
    start = max(start, 0)  # nothing predates the epoch
    if end >= _MAX_SECOND:
        end = 0
    if end < 0 or start >= _MAX_SECOND:
        return Split(False, None, None, ((start, end),))
    first = -(-start // DAY_SECONDS) if start else None  # the first day starting at or after
    last = (end + 1) // DAY_SECONDS - 1 if end else None  # the last day ending at or before
    if first is not None and last is not None and first > last:
        return Split(False, None, None, ((start, end),))
    partial: list[tuple[int, int]] = []
    if first is not None and start < first * DAY_SECONDS:
        partial.append((start, first * DAY_SECONDS - 1))
    if last is not None and (last + 1) * DAY_SECONDS <= end:
        partial.append(((last + 1) * DAY_SECONDS, end))
    return Split(
        True,
        None if first is None else _EPOCH + dt.timedelta(days=first),
        None if last is None else _EPOCH + dt.timedelta(days=last),
        tuple(partial),
    )


def _group_columns(group_by: int, day_expr: str) -> list[tuple[str, str]]:
    """(expression, alias) of the grouping columns, in output order."""
    cols = []
    if group_by in (billing_pb2.STATS_GROUP_BY_DAY, billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL):
        cols.append((day_expr, "day"))
    if group_by in (billing_pb2.STATS_GROUP_BY_MODEL, billing_pb2.STATS_GROUP_BY_DAY_AND_MODEL):
        cols.append(("model_name", "model_name"))
    return cols


def build_query(request: billing_pb2.UsageStatsRequest) -> tuple[str, list[object]]:
    f = request.filter
    p = Params()
    dims = usage_dimensions(p, f)
    split = split_range(f.start_timestamp, f.end_timestamp)
    parts = []

    rollup_cols = _group_columns(request.group_by, "day")
    if split.days:
        where = list(dims)
        if split.first_day is not None:
            where.append(f"day >= {p.add(split.first_day)}")
        if split.last_day is not None:
            where.append(f"day <= {p.add(split.last_day)}")
        select = [f"{expr} AS {alias}" for expr, alias in rollup_cols]
        parts.append(
            f"SELECT {', '.join([*select, 'requests', 'prompt_tokens'])}, completion_tokens,"
            f" quota FROM usage_daily {where_clause(where)}"
        )
    log_cols = _group_columns(request.group_by, _LOG_DAY)
    # Postgres refuses a parameter the statement does not use, so add it only when needed.
    consume = p.add(LOG_TYPE_CONSUME) if split.partial else ""
    for lo, hi in split.partial:
        where = [*dims, f"type = {consume}", f"created_at >= {p.add(lo)}"]
        where.append(f"created_at <= {p.add(hi)}")
        select = [f"{expr} AS {alias}" for expr, alias in log_cols]
        parts.append(
            f"SELECT {', '.join([*select, '1::bigint AS requests', 'prompt_tokens'])},"
            f" completion_tokens, quota FROM logs {where_clause(where)}"
        )
    aliases = [alias for _, alias in rollup_cols]
    group = f" GROUP BY {', '.join(aliases)} ORDER BY {', '.join(aliases)}" if aliases else ""
    outer = ", ".join(
        [
            *aliases,
            "coalesce(sum(requests), 0)::bigint AS requests",
            "coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens",
            "coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens",
            "coalesce(sum(quota), 0)::bigint AS quota",
        ]
    )
    union = " UNION ALL ".join(parts)
    return f"SELECT {outer} FROM ({union}) AS u{group}", p.values


async def usage_stats(
    pool: asyncpg.Pool, request: billing_pb2.UsageStatsRequest
) -> billing_pb2.UsageStatsResponse:
    if request.group_by not in billing_pb2.StatsGroupBy.values():
        raise InvalidFilter(f"unknown group_by {request.group_by}")
    sql, args = build_query(request)
    rows = await pool.fetch(sql, *args)
    columns = {alias for _, alias in _group_columns(request.group_by, "")}
    by_day, by_model = "day" in columns, "model_name" in columns
    out = billing_pb2.UsageStatsResponse()
    total = out.total
    for r in rows:
        stat = billing_pb2.UsageStat(
            day=r["day"].isoformat() if by_day else "",
            model_name=r["model_name"] if by_model else "",
            requests=r["requests"],
            prompt_tokens=r["prompt_tokens"],
            completion_tokens=r["completion_tokens"],
            quota=r["quota"],
        )
        total.requests += stat.requests
        total.prompt_tokens += stat.prompt_tokens
        total.completion_tokens += stat.completion_tokens
        total.quota += stat.quota
        if request.group_by != billing_pb2.STATS_GROUP_BY_NONE:
            out.rows.append(stat)
    return out
