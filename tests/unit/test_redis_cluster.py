"""Redis Cluster: every key one request touches shares a hash slot, and the quota store, the
login throttle, sessions and channel health run on a real cluster (six ``redis-server
--cluster-enabled yes`` processes of this module's own), where a script, a MULTI or a
multi-key command over two slots is refused with CROSSSLOT."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from tests.e2e.own_servers import OwnRedisCluster
from unigate.health import ChannelHealth
from unigate.namespace import KEY_GROUPS, Namespace, key_group
from unigate.quota import (
    Balances,
    QuotaStore,
    RateWindow,
    RelayUsageNote,
    ReserveOutcome,
    Settlement,
    Snapshot,
)
from unigate.redisconn import connect_redis
from unigate_auth.admin.sessions import LoginThrottle, Sessions, ThrottleLimits

NS = Namespace("t-slots", "install-1")


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


@pytest.mark.parametrize(("user_id", "token_id"), [(1, 1), (7, 123456), (10**9 + 3, 42)])
def test_every_key_of_one_reservation_hashes_to_one_slot(user_id: int, token_id: int) -> None:
    q = QuotaStore.__new__(QuotaStore)  # key builders only: no Redis needed
    q._ns = NS
    windows = (
        RateWindow(f"t:{token_id}:rpm", 10, 1),
        RateWindow(f"t:{token_id}:tpm", 1000, 50),
        RateWindow(f"u:{user_id}:rpm", 10, 1),
        RateWindow(f"u:{user_id}:tpm", 1000, 50),
    )
    now = int(time.time() * 1000)
    reserve = q.reserve_keys("req-1", token_id, user_id, windows, now)
    settle = q.settle_keys(Settlement("req-1", token_id, user_id, charged=5, unlimited=False))
    # The relay's usage record, written by a process with no database, under the install.
    relay = NS.user_key(user_id, "rsv", "req-1")
    every = [*reserve, *settle, relay, q.reservation_index(user_id)]
    assert len(set(every)) >= 16  # token, user, reservation, index, windows, load records
    assert _slots(every) == {key_slot(f"{{g{key_group(user_id)}}}".encode())}
    # The group's index is the one the sweeper reads.
    assert q.reservation_index(user_id) == q.reservation_indexes[key_group(user_id)]


def test_groups_spread_over_the_slots() -> None:
    slots = {key_slot(NS.group_key(g, "rsv", "index").encode()) for g in range(KEY_GROUPS)}
    # Distinct slots (one collision or two allowed), so a cluster's masters share the users.
    assert len(slots) > KEY_GROUPS * 0.95
    thirds = [sum(1 for s in slots if lo <= s < lo + 5462) for lo in (0, 5462, 10924)]
    assert min(thirds) > KEY_GROUPS / 4, thirds


# ---- on a real cluster ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedisCluster]:
    server = OwnRedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def rc(cluster: OwnRedisCluster) -> AsyncIterator[Redis]:
    client = connect_redis(cluster.url, max_connections=8)
    yield client
    await client.aclose()


# Users whose groups live on each of the three masters (checked below).
USERS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233]


async def test_quota_store_runs_on_a_cluster(cluster: OwnRedisCluster, rc: Redis) -> None:
    masters = {cluster.master_of(key_slot(NS.user_key(u, "x").encode()))[0] for u in USERS}
    assert len(masters) == 3, "the users' groups should span every master"
    q = QuotaStore(rc, NS)
    now = int(time.time() * 1000)
    for u in USERS:
        token = u * 1000
        outcome = await q.reserve(
            reservation_id=f"r{u}",
            token_id=token,
            user_id=u,
            amount=10,
            unlimited=False,
            now_ms=now,
        )
        assert outcome.outcome is ReserveOutcome.NEEDS_LOAD
        await q.begin_load(token_id=token, user_id=u)
        await q.load_balances(
            token_id=token, token_balance=100, user_id=u, user_balance=1000, snapshot=None
        )
        windows = (RateWindow(f"t:{token}:rpm", 2, 1), RateWindow(f"u:{u}:rpm", 5, 1))
        for i in range(2):
            got = await q.reserve(
                reservation_id=f"r{u}-{i}",
                token_id=token,
                user_id=u,
                amount=10,
                unlimited=False,
                now_ms=now,
                windows=windows,
                gateway_id="gw",
            )
            assert got.outcome is ReserveOutcome.RESERVED and got.counts == (i + 1, i + 1)
        limited = await q.reserve(
            reservation_id=f"r{u}-2",
            token_id=token,
            user_id=u,
            amount=10,
            unlimited=False,
            now_ms=now,
            windows=windows,
        )
        assert limited.outcome is ReserveOutcome.RATE_LIMITED and limited.violated == 0
        assert await q.lower(reservation_id=f"r{u}-1", token_id=token, user_id=u, cost=4) == 6
    await q.note_relay_usage(
        [RelayUsageNote(f"r{u}-0", b"usage", True, NS.install, user_id=u) for u in USERS]
    )
    stale = await q.stale_reservations(now + 1, limit=1000)
    assert {r.reservation_id for r in stale} == {f"r{u}-{i}" for u in USERS for i in (0, 1)}
    assert {r.relay_usage for r in stale if r.reservation_id.endswith("-0")} == {b"usage"}
    assert (await q.open_reservations())[0] == 2 * len(USERS)

    # A refresh of a cached balance while charges settle, then everything settled.
    for u in USERS:
        assert await q.begin_refresh(token_id=u * 1000, user_id=u) == (True, True)
    settled = await q.settle(
        [
            Settlement(f"r{u}-{i}", u * 1000, u, charged=3, unlimited=False)
            for u in USERS
            for i in (0, 1)
        ]
    )
    assert settled == 2 * len(USERS)
    for u in USERS:
        read = Balances(u * 1000, 100, u, 1000, Snapshot(xmin=1, xmax=1))
        await q.refresh_balances(read, token=True, user=True)
    assert await q.open_reservations() == (0, None)
    assert await q.stale_reservations(now + 1) == []
    # The reads saw none of the charges (transaction 0 is "unknown": subtracted): 100 - 6.
    for u in USERS:
        assert int(await rc.get(NS.user_key(u, "q", "t", u * 1000, "bal"))) == 94
        assert int(await rc.get(NS.user_key(u, "q", "u", u, "rsvd"))) == 0
    await q.forget_balances(tokens=[(u * 1000, u) for u in USERS], user_ids=USERS)
    assert not any([await rc.exists(NS.user_key(u, "q", "t", u * 1000, "bal")) for u in USERS])
    await q.abandon_refresh(token_id=1000, user_id=1, user=True)


async def test_settle_loads_its_script_on_a_node_that_has_none(
    cluster: OwnRedisCluster, rc: Redis
) -> None:
    """A promoted replica has no scripts: NOSCRIPT is answered by loading it, not a failure."""
    q = QuotaStore(rc, NS)
    await q.load_balances(token_id=9, token_balance=50, user_id=9, user_balance=50)
    now = int(time.time() * 1000)
    got = await q.reserve(
        reservation_id="flushed", token_id=9, user_id=9, amount=5, unlimited=False, now_ms=now
    )
    assert got.outcome is ReserveOutcome.RESERVED
    await rc.script_flush()  # on every master
    assert await q.settle([Settlement("flushed", 9, 9, charged=2, unlimited=False)]) == 1
    assert int(await rc.get(NS.user_key(9, "q", "u", 9, "bal"))) == 48


async def test_sessions_throttle_and_health_run_on_a_cluster(rc: Redis) -> None:
    sessions = Sessions(rc, NS, ttl_seconds=60)
    ids = [await sessions.create(77) for _ in range(5)]
    assert {await sessions.user_of(s) for s in ids} == {77}
    await sessions.end_all(77, keep=ids[0])
    assert [await sessions.user_of(s) for s in ids] == [77, None, None, None, None]

    throttle = LoginThrottle(rc, NS, ThrottleLimits(per_user=2, per_ip=100, window_seconds=60))
    for _ in range(2):
        await throttle.failed("root", "198.51.100.7")
    assert 0 < await throttle.blocked_for("root", "198.51.100.7") <= 60
    assert await throttle.blocked_for("root", "198.51.100.8") == 0

    health = ChannelHealth(rc, NS)
    until = await health.record_failure(5, int(time.time() * 1000))
    assert (await health.snapshot()).cooling_until[5] == until
    await health.record_success(5)
    assert 5 not in (await health.snapshot()).fails
