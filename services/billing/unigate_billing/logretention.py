"""Forgetting old log rows (One API's ``DELETE /api/log/?target_timestamp=``).

Only ``logs`` rows go: balances were charged when the rows were applied and stay as they are,
and the ``usage_daily`` rollups keep counting the deleted days, so statistics over whole days
do not change. Deleting in batches keeps each transaction (and its locks) short while the
consumer keeps inserting.
"""

from __future__ import annotations

import time

import asyncpg

from unigate.v1 import billing_pb2
from unigate_billing.audit import DELETE_NOTE
from unigate_billing.logfilter import InvalidFilter

BATCH_ROWS = 10_000


async def delete_logs(
    pool: asyncpg.Pool, request: billing_pb2.DeleteLogsRequest
) -> billing_pb2.DeleteLogsResponse:
    if request.before_timestamp <= 0:
        raise InvalidFilter("before_timestamp must be a positive unix time")
    deleted = 0
    while True:
        status: str = await pool.execute(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE created_at < $1"
            f" LIMIT {BATCH_ROWS})",
            request.before_timestamp,
        )
        count = int(status.rsplit(" ", 1)[-1])
        deleted += count
        if count < BATCH_ROWS:
            break
    # A system row says where the log rows stop being complete, so that the audit compares
    # the rollups with the rows only where both are whole (unigate_billing.audit).
    await pool.execute(
        "INSERT INTO logs (type, created_at, content) VALUES (4, $1, $2)",
        int(time.time()),
        DELETE_NOTE.format(n=deleted, before=request.before_timestamp),
    )
    return billing_pb2.DeleteLogsResponse(deleted=deleted)
