"""Forgetting old log rows (One API's ``DELETE /api/log/?target_timestamp=``).

Whole days of consume rows are dropped as partitions, the rest deleted in short batches
(``unigate_billing.partitions``). Balances were charged when the rows were applied and stay as
they are, and the ``usage_daily`` rollups keep counting the forgotten days, so statistics over
whole days do not change.
"""

from __future__ import annotations

import time

import asyncpg

from unigate.v1 import billing_pb2
from unigate_billing.logfilter import InvalidFilter
from unigate_billing.partitions import forget_consume_before, forget_other_before, note_forgotten


async def delete_logs(
    pool: asyncpg.Pool, request: billing_pb2.DeleteLogsRequest
) -> billing_pb2.DeleteLogsResponse:
    if request.before_timestamp <= 0:
        raise InvalidFilter("before_timestamp must be a positive unix time")
    before = request.before_timestamp
    gone = await forget_consume_before(pool, before)
    other = await forget_other_before(pool, before)
    deleted = gone.dropped_rows + gone.deleted_rows + other
    await note_forgotten(pool, deleted, before, time.time())
    return billing_pb2.DeleteLogsResponse(deleted=deleted)
