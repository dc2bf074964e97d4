"""``redis+sentinel://``: the quota store follows the master a real ``redis-server
--sentinel`` names, before and after that master is SIGKILLed and its replica promoted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.e2e.own_servers import OwnRedisSentinel
from unigate.namespace import Namespace
from unigate.quota import QuotaStore, ReserveOutcome, ReserveResult, Settlement
from unigate.redisconn import connect_redis

NS = Namespace("t-sentinel", "install-1")


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[OwnRedisSentinel]:
    server = OwnRedisSentinel(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_quota_store_follows_the_master_sentinel_names(sentinel: OwnRedisSentinel) -> None:
    client = connect_redis(sentinel.url, max_connections=4)
    q = QuotaStore(client, NS)
    try:
        await q.load_balances(token_id=5, token_balance=100, user_id=6, user_balance=100)

        async def reserve(rid: str) -> ReserveResult:
            return await q.reserve(
                reservation_id=rid, token_id=5, user_id=6, amount=10, unlimited=False, now_ms=1
            )

        assert (await reserve("before")).outcome is ReserveOutcome.RESERVED
        assert await q.settle([Settlement("before", 5, 6, charged=4, unlimited=False)]) == 1
        # Replicated before the master dies (Redis replicates asynchronously: what is not yet
        # on the replica is lost with the master, as docs/architecture.md says).
        assert await client.execute_command("WAIT", 1, 10_000) == 1
        first = sentinel.master_port()
        promoted = await asyncio.to_thread(sentinel.kill_master)
        assert promoted == sentinel.replica != first

        # The promoted replica has what was replicated; the client finds it through the
        # Sentinel once its old connections fail (retried here as auth's callers would).
        deadline = time.monotonic() + 30
        while True:
            try:
                got = await reserve("after")
                break
            except RedisConnectionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert got.outcome is ReserveOutcome.RESERVED
        assert int(await client.get(NS.user_key(6, "q", "t", 5, "bal"))) == 96
        assert await q.settle([Settlement("after", 5, 6, charged=10, unlimited=False)]) == 1
        assert int(await client.get(NS.user_key(6, "q", "t", 5, "bal"))) == 86
    finally:
        await client.aclose()
