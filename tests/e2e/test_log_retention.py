"""Retention while traffic flows: billing's own maintenance job (``LOG_RETENTION_DAYS``,
``unigate_billing.partitions``) drops the partitions of old days under load, and afterwards
the ledger of the live traffic is exact, the forgotten days still count in the rollups and in
the balances, and ``unigate audit`` finds no drift."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from tests import admin_writes
from tests.e2e.test_balance_truth import Load, assert_ledger_exact
from tests.e2e.test_parallel_billing import assert_audit_clean, ledger_env
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.request_ids import new_request_id
from unigate.v1 import auth_pb2, common_pb2, events_pb2
from unigate_billing import partitions
from unigate_billing.ledger import Ledger

DAY = partitions.DAY
KEEP_DAYS = 3
OLD_DAYS = range(10, 4, -1)  # days ago, all older than KEEP_DAYS
PER_DAY = 5


def old_event(
    user_id: int, token_id: int, channel_id: int, arrived_ms: int
) -> events_pb2.UsageEvent:
    rid = new_request_id(now_ms=arrived_ms)
    return events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=rid,
        reservation_id="",
        user_id=user_id,
        token_id=token_id,
        channel_id=channel_id,
        model="retention-model",
        usage=common_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        pricing=auth_pb2.Pricing(model_ratio=1, completion_ratio=1, group_ratio=1),
        quota=15,
        status_code=200,
        created_at_ms=arrived_ms + 800,
    )


async def test_old_days_are_dropped_under_load_and_the_ledger_stays_whole(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    async with ledger_env(
        tmp_path_factory.mktemp("retention"),
        LOG_RETENTION_DAYS=str(KEEP_DAYS),
        LOG_MAINTENANCE_INTERVAL="1",
    ) as env:
        # Old traffic, written as billing writes it, for a user and key of its own (the live
        # stack caches user 1's balance; this one's is never cached).
        user_id = await admin_writes.create_user(
            env.pg,
            username=f"retention-{secrets.token_hex(4)}",
            password=secrets.token_hex(8),
            quota=10**6,
        )
        old_token = await admin_writes.create_token(
            env.pg, user_id=user_id, name="old-traffic", remain_quota=10**6
        )
        now = int(time.time())
        today = now // DAY
        events = [
            old_event(
                user_id, old_token.id, env.channel_id, ((today - ago) * DAY + 3600 * i) * 1000
            )
            for ago in OLD_DAYS
            for i in range(PER_DAY)
        ]
        token = await env.new_token()
        load = Load(token.key, workers=6)
        thread = load.run(env)
        try:
            await load.until(30)
            ledger = Ledger(env.pg)
            for ago in OLD_DAYS:
                # As if billing had been up then: the day's partition, then its rows.
                await partitions.ensure_days(env.pg, (today - ago) * DAY, ahead=0)
            applied = await ledger.apply(events)
            assert len(applied) == len(events)
            # Billing's job (every second here) forgets them while the load goes on.
            deadline = time.monotonic() + 120
            while True:
                days = await partitions.consume_days(env.pg)
                old_rows = await env.pg.fetchval(
                    "SELECT count(*) FROM logs WHERE type = 2 AND token_id = $1", old_token.id
                )
                if not any(d < today - KEEP_DAYS for d in days) and old_rows == 0:
                    break
                assert time.monotonic() < deadline, (sorted(days), old_rows)
                await asyncio.sleep(0.5)
            served_during = sum(1 for _, a in load.answers if a.status == 200)
            await load.until(served_during + 30)
        finally:
            load.stop.set()
            await asyncio.to_thread(thread.join, 60)
        answers = [a for _, a in load.answers]
        assert not load.errors, load.errors[:3]
        assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]
        # The live traffic: every request served is in the ledger once, the key's balance
        # equals it.
        assert await assert_ledger_exact(env, token.id, answers) > 0
        # The forgotten days: gone from the rows, kept in the rollups and the balances.
        charged = 15 * len(events)
        rollup = await env.pg.fetchrow(
            "SELECT sum(requests) AS n, sum(quota) AS q FROM usage_daily WHERE token_id = $1",
            old_token.id,
        )
        assert (rollup["n"], rollup["q"]) == (len(events), charged)
        used = await env.pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", old_token.id)
        assert used == charged
        note = await env.pg.fetchval(
            "SELECT content FROM logs WHERE type = 4 AND content LIKE 'deleted %'"
            " ORDER BY id DESC LIMIT 1"
        )
        assert note is not None and note.endswith(f"created before {(today - KEEP_DAYS) * DAY}")
        assert_audit_clean(env)
