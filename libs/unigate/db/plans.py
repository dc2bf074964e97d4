"""What statements read, for the tests and benchmarks that bound it: the statements a pool's
connections run (a query logger added as each connects), and the rows and buffers an
``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` plan's scans touched."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery


class StatementLog:
    """Every statement naming ``table`` that a pool's connections run: pass ``attach`` as the
    pool's ``init``. Others (the transaction, its settings, the pool's reset) are left out."""

    def __init__(self, table: str) -> None:
        self.needle = f" FROM {table} "
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def attach(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(self.log)

    def log(self, q: LoggedQuery) -> None:
        if self.needle in q.query:
            self.statements.append((q.query, tuple(q.args)))


def rows_read(plan: dict[str, Any]) -> int:
    """Rows a plan's scans returned or discarded (index entries or heap rows), all loops."""
    own = 0
    if "Scan" in plan["Node Type"]:
        loops = plan.get("Actual Loops", 1)
        own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
        own += plan.get("Rows Removed by Index Recheck", 0)
    return own + sum(rows_read(child) for child in plan.get("Plans", []))


def buffers(plan: dict[str, Any]) -> int:
    """Shared buffers the plan touched (hit or read; the top node counts its children's)."""
    return int(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))
