"""Turning a ``LogFilter`` / ``UsageFilter`` into SQL conditions.

Only column names and placeholders are ever written into the SQL text; every value travels as
a parameter. The dimension conditions are shared by ``logs`` and ``usage_daily`` (both have
``user_id``, ``token_id``, ``channel_id`` and ``model_name``), so a query that combines the two
selects the same rows from each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unigate.v1 import billing_pb2

LOG_TYPES = frozenset({1, 2, 3, 4, 5})


class InvalidFilter(ValueError):
    """A filter the caller must fix; the message is meant for them."""


@dataclass
class Params:
    """Positional parameters of one statement: ``add`` returns the placeholder of a value."""

    values: list[object] = field(default_factory=list)

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def check_range(start: int, end: int) -> None:
    if start < 0 or end < 0:
        raise InvalidFilter("timestamps are unix seconds and cannot be negative")
    if start and end and start > end:
        raise InvalidFilter("start_timestamp is after end_timestamp")


def dimension_conditions(
    p: Params,
    *,
    user_id: int,
    username: str,
    token_id: int,
    token_name: str,
    model_name: str,
    channel_id: int,
) -> list[str]:
    where = []
    if user_id:
        where.append(f"user_id = {p.add(user_id)}")
    if username:
        where.append(f"user_id = (SELECT id FROM users WHERE username = {p.add(username)})")
    if token_id:
        where.append(f"token_id = {p.add(token_id)}")
    if token_name:
        where.append(f"token_id IN (SELECT id FROM tokens WHERE name = {p.add(token_name)})")
    if model_name:
        where.append(f"model_name = {p.add(model_name)}")
    if channel_id:
        where.append(f"channel_id = {p.add(channel_id)}")
    return where


def log_conditions(p: Params, f: billing_pb2.LogFilter) -> list[str]:
    """Conditions on ``logs`` for a ``LogFilter`` (validated first)."""
    check_range(f.start_timestamp, f.end_timestamp)
    if f.type and f.type not in LOG_TYPES:
        raise InvalidFilter(
            f"unknown log type {f.type} (1 top-up, 2 consume, 3 manage, 4 system, 5 test)"
        )
    where = dimension_conditions(
        p,
        user_id=f.user_id,
        username=f.username,
        token_id=f.token_id,
        token_name=f.token_name,
        model_name=f.model_name,
        channel_id=f.channel_id,
    )
    if f.type:
        where.append(f"type = {p.add(f.type)}")
    if f.request_id:
        # Ours (what the client was told in x-request-id) or the id the client sent.
        rid = p.add(f.request_id)
        where.append(f"(request_id = {rid} OR client_request_id = {rid})")
    if f.start_timestamp:
        where.append(f"created_at >= {p.add(f.start_timestamp)}")
    if f.end_timestamp:
        where.append(f"created_at <= {p.add(f.end_timestamp)}")
    if f.keyword:
        where.append(keyword_condition(p, f.keyword))
    return where


def keyword_condition(p: Params, keyword: str) -> str:
    """One API's log search (``type = keyword OR content LIKE 'keyword%'``), widened to the
    ids and the model a reader searches for: a row matches if its content starts with the
    keyword, its model or either request id is the keyword, or its type is (a number)."""
    if len(keyword) > 256:
        raise InvalidFilter("a search keyword is at most 256 characters")
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    k = p.add(keyword)
    anyof = [
        f"content LIKE {p.add(escaped + '%')}",
        f"model_name = {k}",
        f"request_id = {k}",
        f"client_request_id = {k}",
    ]
    if keyword.isdigit() and len(keyword) < 10:
        anyof.append(f"type = {p.add(int(keyword))}")
    return "(" + " OR ".join(anyof) + ")"


def usage_dimensions(p: Params, f: billing_pb2.UsageFilter) -> list[str]:
    check_range(f.start_timestamp, f.end_timestamp)
    return dimension_conditions(
        p,
        user_id=f.user_id,
        username=f.username,
        token_id=f.token_id,
        token_name=f.token_name,
        model_name=f.model_name,
        channel_id=f.channel_id,
    )


def where_clause(conditions: list[str]) -> str:
    return ("WHERE " + " AND ".join(conditions)) if conditions else ""
