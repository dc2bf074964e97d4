"""The whole stack on a real Redis Cluster (six ``redis-server --cluster-enabled yes``
processes of this module's own, three masters with a replica each): quota, rate limits and
the ledger exact, and a master SIGKILLed mid-load while its replica is promoted — every
request completed or failed cleanly, the ledger equals what was served, balances heal from
Postgres, and ``unigate audit`` finds no drift."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from tests.e2e.own_servers import OwnRedisCluster
from tests.e2e.test_balance_truth import Answer, Load, ask, assert_ledger_exact, session
from tests.e2e.test_parallel_billing import assert_audit_clean, ledger_env, wait_drained
from unigate.redisconn import get_many

# Clean refusals a request may meet while a master is being replaced: the quota store
# unreachable (fail closed), or auth unable to answer (the gateway's 503).
CLEAN_FAILURES = {(503, "quota_store_unavailable"), (503, "service_unavailable")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedisCluster]:
    server = OwnRedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_quota_and_rate_limits_on_a_cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster: OwnRedisCluster
) -> None:
    async with (
        ledger_env(tmp_path_factory.mktemp("cluster-quota"), redis_url=cluster.url) as env,
        session(env) as http,
    ):
        probe = await env.new_token()
        first = await ask(http, probe.key)
        assert first.status == 200, first
        await wait_drained(env)
        cost = await env.pg.fetchval(
            "SELECT quota FROM logs WHERE request_id = $1", first.request_id
        )

        # Rate limit: three requests a minute on this key, the fourth refused with a 429.
        limited = await env.new_token(remain_quota=10**9, unlimited=False)
        await env.pg.execute("UPDATE tokens SET rpm_limit = 3 WHERE id = $1", limited.id)
        answers = [await ask(http, limited.key) for _ in range(4)]
        if answers[-1].status == 200:  # the minute turned between two of them: once more
            answers += [await ask(http, limited.key) for _ in range(4)]
        assert (answers[-1].status, answers[-1].code) == (429, "rate_limit_exceeded"), answers

        # Quota: a budget of five requests is spent to its end, then refused.
        budget = 5 * cost
        poor = await env.new_token(remain_quota=budget, unlimited=False)
        spent = [await ask(http, poor.key) for _ in range(8)]
        assert [a.status for a in spent[:5]] == [200] * 5, spent
        assert (spent[-1].status, spent[-1].code) == (403, "insufficient_quota"), spent
        charged = await assert_ledger_exact(env, poor.id, spent)
        assert charged <= budget
        remain = await env.pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", poor.id)
        assert remain == budget - charged
        await assert_ledger_exact(env, limited.id, answers)
        assert_audit_clean(env)


async def test_a_master_killed_mid_load_loses_nothing_billed(
    tmp_path_factory: pytest.TempPathFactory, cluster: OwnRedisCluster
) -> None:
    quota = 10**8
    async with ledger_env(
        tmp_path_factory.mktemp("cluster-failover"),
        redis_url=cluster.url,
        # A reservation whose settlement the dead master took with it is swept soon (at the
        # charge already in the ledger), and cached balances are re-read from Postgres often.
        RESERVATION_TIMEOUT="20",
        RESERVATION_SWEEP_INTERVAL="2",
        BALANCE_REFRESH="2",
    ) as env:
        token = await env.new_token(remain_quota=quota, unlimited=False)
        # The master holding this key's group: every key of its requests is in that slot.
        slot = key_slot(env.ns.user_key(1, "q", "t", token.id, "bal").encode())
        load = Load(token.key, workers=8)
        thread = load.run(env)
        try:
            await load.until(40, within=120)
            before_kill = len(load.answers)
            dead, promoted = await asyncio.to_thread(cluster.kill_master_of, slot)
            assert promoted != dead
            served = sum(1 for _, a in load.answers if a.status == 200)
            await load.until(served + 40, within=180)
        finally:
            load.stop.set()
            await asyncio.to_thread(thread.join, 120)
        answers: list[Answer] = [a for _, a in load.answers]
        assert len(answers) > before_kill
        # Every request completed or failed cleanly: no connection cut, no 500, no hang.
        assert not load.errors, load.errors[:5]
        outcomes = {(a.status, a.code) for a in answers if a.status != 200}
        assert outcomes <= CLEAN_FAILURES, outcomes

        # The ledger equals what was served; Postgres holds the balance it implies.
        charged = await assert_ledger_exact(env, token.id, answers)
        remain = await env.pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id)
        assert remain == quota - charged

        # Redis heals: reservations released or swept, the cached balances equal Postgres.
        user_key = env.ns.user_key
        keys = [
            user_key(1, "q", "t", token.id, "bal"),
            user_key(1, "q", "t", token.id, "rsvd"),
        ]
        deadline = time.monotonic() + 90
        while True:
            async with session(env) as http:
                nudge = await ask(http, token.key)  # a request re-reads a stale balance
            await wait_drained(env)
            cached, reserved = await get_many(env.redis, keys)
            remain = await env.pg.fetchval(
                "SELECT remain_quota FROM tokens WHERE id = $1", token.id
            )
            if cached is not None and int(cached) == remain and int(reserved or 0) == 0:
                break
            # Never above the truth in the meantime, less what is still reserved.
            if cached is not None:
                assert int(cached) - int(reserved or 0) <= remain, (cached, reserved, remain)
            assert time.monotonic() < deadline, (cached, reserved, remain, nudge)
            await asyncio.sleep(1)
        assert_audit_clean(env)
