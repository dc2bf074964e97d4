"""The reservation sweeper against the real Redis and Postgres: a dead gateway's reservations
are settled at once (at the provider's usage when its relay recorded it, else the
reservation), a living gateway's are left alone until the timeout, and a late real event
corrects the row without a second charge."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests import admin_writes
from unigate.charge import quota_of
from unigate.gateways import GatewayRegistry
from unigate.namespace import USAGE_SCHEMA_VERSION, Namespace
from unigate.quota import BATCH_HOLDER, QuotaStore, RelayUsageNote, ReserveOutcome
from unigate.request_ids import new_request_id
from unigate.v1 import auth_pb2, common_pb2, events_pb2, relay_pb2
from unigate_auth.batch_store import BatchItem, BatchRecord
from unigate_auth.message_batches import result_row
from unigate_billing import ledger as ledger_module
from unigate_billing.ledger import Ledger
from unigate_billing.sweeper import RECOVERED_CODE, SWEPT_CODE, ReservationSweeper
from unigate_cli.devstack import free_port
from unigate_relay.usage_record import UsageRecorder

PRICING = auth_pb2.Pricing(model_ratio=0.075, completion_ratio=4, group_ratio=1, cached_ratio=0.5)
AMOUNT = 156


@dataclass
class Env:
    quota: QuotaStore
    gateways: GatewayRegistry
    ledger: Ledger
    pg: asyncpg.Pool
    redis: Redis
    ns: Namespace
    token_id: int
    user_id: int
    channel_id: int

    def sweeper(self, timeout: float = 900.0) -> ReservationSweeper:
        return ReservationSweeper(
            self.ledger,
            self.quota,
            self.gateways,
            timeout_seconds=timeout,
            interval_seconds=1,
            dead_gateway_grace_seconds=0,
        )

    async def reserve(self, gateway_id: str, age_s: float = 120.0) -> str:
        # As a gateway makes it: carrying the time the request arrived (its reservation's).
        rid = new_request_id(now_ms=int((time.time() - age_s) * 1000))
        context = events_pb2.ReservationContext(
            request_id=rid,
            token_name="sweeper-test",
            model="gpt-4o-mini",
            endpoint="chat.completions",
            pricing=PRICING,
        ).SerializeToString()
        result = await self.quota.reserve(
            reservation_id=rid,
            token_id=self.token_id,
            user_id=self.user_id,
            amount=AMOUNT,
            unlimited=False,
            now_ms=int((time.time() - age_s) * 1000),
            gateway_id=gateway_id,
            context=context,
        )
        assert result.outcome is ReserveOutcome.RESERVED
        return rid

    async def row(self, rid: str) -> asyncpg.Record | None:
        return await self.pg.fetchrow("SELECT * FROM logs WHERE request_id = $1", rid)

    async def used(self) -> int:
        used: int = await self.pg.fetchval(
            "SELECT used_quota FROM tokens WHERE id = $1", self.token_id
        )
        return used


@pytest.fixture
async def env(
    redis: Redis, namespace: str, pg: asyncpg.Pool, secret_key: str
) -> AsyncIterator[Env]:
    # Rows are charged to a channel of its own, so that the session's audit finds each
    # channel's used quota equal to its rollups whatever ran before.
    channel_id = await admin_writes.create_channel(
        pg, secret_key=secret_key, type=1, name="sweeper-test", key="sk-sweeper", models="m"
    )
    # A namespace of its own: the sweeper scans every open reservation of its namespace.
    ns = Namespace(f"{namespace}sw{secrets.token_hex(3)}")
    # And a user of its own: the database is the session's, whose e2e stack caches user 1's
    # balance under another namespace; charging user 1 here would leave that cache above the
    # balance of record (the session's audit reports it as a drift).
    user_id = await admin_writes.create_user(
        pg, username=f"sweeper-{secrets.token_hex(4)}", password=secrets.token_hex(8), quota=10**9
    )
    token = await admin_writes.create_token(
        pg, user_id=user_id, name="sweeper-test", remain_quota=10**6
    )
    quota = QuotaStore(redis, ns)
    await quota.load_balances(
        token_id=token.id, token_balance=10**6, user_id=user_id, user_balance=10**9
    )
    yield Env(
        quota, GatewayRegistry(redis, ns), Ledger(pg), pg, redis, ns, token.id, user_id, channel_id
    )
    keys = [k async for k in redis.scan_iter(match=f"{ns.name}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


def relay_request(env: Env, rid: str) -> relay_pb2.RelayRequest:
    return relay_pb2.RelayRequest(
        request_id=rid,
        reservation_id=rid,
        channel_id=env.channel_id,
        upstream_model="gpt-4o-mini",
        user_id=env.user_id,
    )


async def record(env: Env, *calls: tuple[str, common_pb2.Usage | None, int]) -> None:
    """What the relay does as calls end: (reservation, usage or None if broken off, status)."""
    recorder = UsageRecorder(env.quota, linger=0.005, max_pending=1000)
    recorder.start()
    for rid, usage, status in calls:
        if usage is None:
            recorder.broken_off(relay_request(env, rid))
        else:
            recorder.ended(relay_request(env, rid), usage, status=status, upstream_ms=42)
    await recorder.close()
    assert recorder.written == len(calls)


USAGE = common_pb2.Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12)


async def test_dead_gateway_is_swept_at_relay_usage_or_reservation(env: Env) -> None:
    await env.gateways.beat("gw-alive", 30)
    alive = await env.reserve("gw-alive")
    dead_known = await env.reserve("gw-dead")
    dead_unknown = await env.reserve("gw-dead")
    dead_broken = await env.reserve("gw-dead")
    dead_failed_then_used = await env.reserve("gw-dead")
    await record(
        env,
        (alive, USAGE, 200),
        (dead_known, USAGE, 200),
        (dead_broken, common_pb2.Usage(), 502),  # a first attempt failed, using nothing
        (dead_broken, None, 0),  # the retry's stream was cut off with its gateway
        (dead_failed_then_used, USAGE, 200),
        (dead_failed_then_used, common_pb2.Usage(), 502),  # out of order: must not hide it
    )
    before = await env.used()

    assert await env.sweeper().sweep_once() == 4

    # The living gateway's reservation is untouched, however old.
    assert await env.row(alive) is None
    real = quota_of(PRICING, USAGE)
    assert real < AMOUNT
    for rid in (dead_known, dead_failed_then_used):
        row = await env.row(rid)
        assert row is not None
        assert (row["error_code"], row["quota"], row["status_code"]) == (RECOVERED_CODE, real, 200)
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (7, 5, False)
        assert (row["channel_id"], row["model_name"], row["latency_ms"]) == (
            env.channel_id,
            "gpt-4o-mini",
            42,
        )
        assert row["model_ratio"] == PRICING.model_ratio and row["reserved_quota"] == AMOUNT
    for rid in (dead_unknown, dead_broken):
        row = await env.row(rid)
        assert row is not None
        assert (row["error_code"], row["quota"], row["estimated"]) == (SWEPT_CODE, AMOUNT, True)
    assert await env.used() == before + 2 * real + 2 * AMOUNT
    open_ids = {r.reservation_id for r in await env.quota.stale_reservations(10**15)}
    assert open_ids == {alive}

    # The gateway's own event arrives after all (it was only cut off): the row takes it, once.
    late = events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=dead_unknown,
        reservation_id=dead_unknown,
        reserved_quota=AMOUNT,
        user_id=env.user_id,
        token_id=env.token_id,
        model="gpt-4o-mini",
        usage=USAGE,
        pricing=PRICING,
        quota=real,
        status_code=200,
        created_at_ms=int(time.time() * 1000),
    )
    for _ in range(2):
        await env.ledger.apply([late])
    row = await env.row(dead_unknown)
    assert row is not None and (row["error_code"], row["quota"]) == ("", real)
    assert await env.used() == before + 3 * real + AMOUNT
    # So does a row recovered from the relay's record (the same usage: nothing moves).
    late.request_id = late.reservation_id = dead_known
    late.latency_ms = 77
    applied = await env.ledger.apply([late])
    assert [(a.request_id, a.charged, a.corrected) for a in applied] == [(dead_known, 0, True)]
    row = await env.row(dead_known)
    assert row is not None and (row["error_code"], row["quota"], row["latency_ms"]) == (
        "",
        real,
        77,
    )
    assert await env.used() == before + 3 * real + AMOUNT
    assert (
        await env.pg.fetchval(
            "SELECT count(*) FROM logs WHERE request_id = ANY($1::text[])",
            [alive, dead_known, dead_unknown, dead_broken, dead_failed_then_used],
        )
        == 4
    )

    # Sweeping again changes nothing while the gateway lives; once its heartbeat is gone, its
    # reservation goes at the next sweep.
    assert await env.sweeper().sweep_once() == 0
    await env.redis.delete(env.ns.redis_key("gw", "gw-alive"))
    assert await env.sweeper().sweep_once() == 1
    row = await env.row(alive)
    assert row is not None and (row["error_code"], row["quota"]) == (RECOVERED_CODE, real)


async def test_living_gateway_reservation_waits_for_the_timeout(env: Env) -> None:
    await env.gateways.beat("gw-slow", 30)
    slow = await env.reserve("gw-slow", age_s=50)
    anonymous = await env.reserve("", age_s=50)  # an older gateway that names none
    assert await env.sweeper(timeout=60).sweep_once() == 0
    assert await env.row(slow) is None and await env.row(anonymous) is None
    # Past the timeout both go, at the reservation: nothing is known of them.
    assert await env.sweeper(timeout=40).sweep_once() == 2
    for rid in (slow, anonymous):
        row = await env.row(rid)
        assert row is not None and (row["error_code"], row["quota"]) == (SWEPT_CODE, AMOUNT)


async def test_a_message_batch_reservation_is_never_swept(env: Env) -> None:
    """A batch may run a day: its reservation names no gateway that could die, and neither
    the dead-gateway rule nor the timeout settles it (auth bills the batch and releases it)."""
    batch = await env.reserve(BATCH_HOLDER, age_s=3600)
    anonymous = await env.reserve("", age_s=3600)
    assert await env.sweeper(timeout=60).sweep_once() == 1
    assert await env.row(batch) is None and await env.row(anonymous) is not None
    held = {r.reservation_id for r in await env.quota.stale_reservations(2**62, limit=10_000)}
    assert batch in held


async def test_relay_record_never_revives_a_settled_reservation(env: Env) -> None:
    rid = await env.reserve("gw-x")
    assert await env.sweeper().sweep_once() == 1  # gw-x never beat: dead
    await record(env, (rid, USAGE, 200))
    assert not await env.redis.exists(env.ns.user_key(env.user_id, "rsv", rid))


async def test_heartbeat_expires(env: Env) -> None:
    await env.gateways.beat("gw-brief", 0.2)
    assert await env.gateways.alive({"gw-brief", "gw-never"}) == {"gw-brief"}
    await asyncio.sleep(0.3)
    assert await env.gateways.alive({"gw-brief"}) == set()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test's own (the test flushes its scripts); yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def private_redis(redis_server: int) -> AsyncIterator[Redis]:
    client = Redis(port=redis_server)
    for _ in range(100):
        with contextlib.suppress(RedisError):
            if await client.ping():
                break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"the private redis-server on port {redis_server} never answered")
    yield client
    await client.aclose()


async def test_relay_records_survive_a_server_that_lost_its_scripts(private_redis: Redis) -> None:
    ns = Namespace("scripts")
    quota = QuotaStore(private_redis, ns)
    await quota.load_balances(token_id=1, token_balance=10**6, user_id=1, user_balance=10**6)
    for rid in ("a", "b"):
        await quota.reserve(
            reservation_id=rid, token_id=1, user_id=1, amount=5, unlimited=False, now_ms=1
        )
    await private_redis.script_flush()
    await quota.note_relay_usage(
        [
            RelayUsageNote("a", b"rec-a", True, user_id=1),
            RelayUsageNote("b", b"rec-b", False, user_id=1),
        ]
    )
    assert await private_redis.hget(ns.user_key(1, "rsv", "a"), "ru") == b"rec-a"
    assert await private_redis.hget(ns.user_key(1, "rsv", "b"), "ru") == b"rec-b"


async def test_real_event_racing_the_sweepers_uncommitted_row_corrects_it(env: Env) -> None:
    """The sweeper's row is still uncommitted when the consumer applies the real event: the
    consumer's insert waits for it and does nothing, and its correction (whose snapshot
    predates the commit) cannot see it; the ledger must still end at the real usage."""
    rid = new_request_id()
    real = quota_of(PRICING, USAGE)

    def event(quota: int, usage: common_pb2.Usage, error_code: str) -> events_pb2.UsageEvent:
        return events_pb2.UsageEvent(
            schema_version=USAGE_SCHEMA_VERSION,
            request_id=rid,
            reservation_id=rid,
            reserved_quota=AMOUNT,
            user_id=env.user_id,
            token_id=env.token_id,
            model="gpt-4o-mini",
            usage=usage,
            pricing=PRICING,
            quota=quota,
            status_code=200,
            error_code=error_code,
            created_at_ms=int(time.time() * 1000),
        )

    swept = event(AMOUNT, common_pb2.Usage(estimated=True), SWEPT_CODE)
    before = await env.used()
    async with env.pg.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        # What the sweeper's Ledger.apply runs, held open before its commit.
        await conn.fetch(ledger_module._APPLY, *ledger_module._params([swept]))
        consumer = asyncio.create_task(env.ledger.apply([event(real, USAGE, "")]))
        # Until the consumer's insert waits on the sweeper's uncommitted row.
        for _ in range(400):
            waiting = await env.pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the consumer never waited on the sweeper's row"
        assert not consumer.done()
        await tx.commit()
    applied = await asyncio.wait_for(consumer, 30)

    assert [(a.request_id, a.corrected, a.charged) for a in applied] == [(rid, True, real - AMOUNT)]
    row = await env.row(rid)
    assert row is not None and (row["error_code"], row["quota"]) == ("", real)
    assert await env.used() == before + real


async def test_batch_results_split_but_never_published_are_billed_once_at_their_usage(
    env: Env,
) -> None:
    """Auth died after splitting a batch's reservation into its results and before their
    events reached billing: the sweeper bills each at the usage the split recorded (0 for a
    result that used nothing); the events published on the next look then change nothing."""
    created_ms = int((time.time() - 3600) * 1000)
    record = BatchRecord(
        reservation_id=new_request_id(now_ms=created_ms),
        batch_id="msgbatch_" + secrets.token_hex(8),
        user_id=env.user_id,
        token_id=env.token_id,
        token_name="sweeper-test",
        group="default",
        client_ip="",
        unlimited=False,
        channel_id=env.channel_id,
        key_fingerprint="",
        created_ms=created_ms,
        reserved_quota=2 * AMOUNT,
        items=(
            BatchItem("a", "m", "gpt-4o-mini", AMOUNT),
            BatchItem("b", "m", "gpt-4o-mini", AMOUNT),
        ),
        pricing={"m": PRICING},
        state="open",
        object=None,
    )
    reserved = await env.quota.reserve(
        reservation_id=record.reservation_id,
        token_id=env.token_id,
        user_id=env.user_id,
        amount=2 * AMOUNT,
        least=2 * AMOUNT,
        unlimited=False,
        now_ms=created_ms,
        gateway_id=BATCH_HOLDER,
    )
    assert reserved.outcome is ReserveOutcome.RESERVED
    lines = {
        "a": relay_pb2.BatchResultLine(custom_id="a", type="succeeded", usage=USAGE),
        "b": relay_pb2.BatchResultLine(custom_id="b", type="expired"),
    }
    rows = [result_row(record, item, lines[item.custom_id]) for item in record.items]
    assert await env.quota.split_batch(
        reservation_id=record.reservation_id,
        token_id=env.token_id,
        user_id=env.user_id,
        requests=2,
        shares=[share for _, share in rows],
        now_ms=created_ms,
    )
    before = await env.used()
    assert await env.sweeper(timeout=60).sweep_once() == 2
    real = quota_of(PRICING, USAGE)
    a, b = [await env.row(event.request_id) for event, _ in rows]
    assert a is not None and (a["error_code"], a["quota"], a["prompt_tokens"]) == (
        RECOVERED_CODE,
        real,
        7,
    )
    assert b is not None and (b["quota"], b["status_code"]) == (0, 408)
    assert await env.used() == before + real
    # The next look publishes the events after all: the rows take them, the charge stays.
    events = [event for event, _ in rows]
    applied = {x.request_id: x for x in await env.ledger.apply(events)}
    await env.quota.settle(await env.ledger.settlements(events, applied))
    await env.ledger.apply(events)  # and once more: nothing
    a = await env.row(events[0].request_id)
    assert a is not None and (a["error_code"], a["quota"]) == ("", real)
    assert await env.used() == before + real
    assert not await env.quota.stale_reservations(2**62, limit=10_000)


# ---- spare reservations (a hot key served by its gateway without Authorize) ----------------


async def rsvd(env: Env) -> tuple[int, int]:
    """The token's and the user's sum of open reservations."""
    t = await env.redis.get(env.ns.user_key(env.user_id, "q", "t", env.token_id, "rsvd"))
    u = await env.redis.get(env.ns.user_key(env.user_id, "q", "u", env.user_id, "rsvd"))
    return int(t or 0), int(u or 0)


async def issue(env: Env, gateway_id: str, n: int, valid_ms: int = 1000) -> list[str]:
    unbound = events_pb2.ReservationContext(
        token_name="sweeper-test", model="gpt-4o-mini", endpoint="chat.completions"
    )
    base = new_request_id()
    return await env.quota.issue_spares(
        spare_ids=[f"{base}.s{i}" for i in range(n)],
        token_id=env.token_id,
        user_id=env.user_id,
        amount=AMOUNT,
        unlimited=False,
        gateway_id=gateway_id,
        context=unbound.SerializeToString(),
        valid_ms=valid_ms,
        share=4,
    )


async def bind(env: Env, spare: str, gateway_id: str) -> tuple[bool, str]:
    rid = new_request_id()
    context = events_pb2.ReservationContext(
        request_id=rid,
        token_name="sweeper-test",
        model="gpt-4o-mini",
        endpoint="chat.completions",
        pricing=PRICING,
    ).SerializeToString()
    [bound] = await env.quota.bind_spares(
        env.user_id, gateway_id, [(spare, context, int(time.time() * 1000))]
    )
    return bound, rid


async def test_spares_only_while_the_balance_covers_them_comfortably(env: Env) -> None:
    assert len(await issue(env, "gw-a", 5)) == 5
    assert await rsvd(env) == (5 * AMOUNT, 5 * AMOUNT)
    # What is left covers 4x only so many spares: the rest is not booked.
    await env.redis.set(
        env.ns.user_key(env.user_id, "q", "t", env.token_id, "bal"), 5 * AMOUNT + 9 * AMOUNT
    )
    assert len(await issue(env, "gw-a", 5)) == 2
    assert await rsvd(env) == (7 * AMOUNT, 7 * AMOUNT)
    # Each issue takes at most a quarter of what is left, so spares never hold the last
    # three requests' worth of a balance: those are reserved per request, by auth.
    while await issue(env, "gw-b", 5):
        pass
    assert await rsvd(env) == (11 * AMOUNT, 11 * AMOUNT)


async def test_a_spare_is_bound_or_released_never_both(env: Env) -> None:
    first, second = await issue(env, "gw-a", 2)
    # Released first: a late binding fails (the gateway then asks auth).
    assert await env.quota.release_spares([(first, env.token_id, env.user_id)]) == 1
    assert (await bind(env, first, "gw-a"))[0] is False
    # Bound first: releasing it does nothing (its request's settlement releases it).
    assert (await bind(env, second, "gw-b"))[0] is False  # another gateway's spare
    assert (await bind(env, second, "gw-a"))[0] is True
    assert (await bind(env, second, "gw-a"))[0] is False  # bound once only
    assert await env.quota.release_spares([(second, env.token_id, env.user_id)]) == 0
    assert await rsvd(env) == (AMOUNT, AMOUNT)
    # Past its validity a spare cannot be bound, by Redis' clock.
    (late,) = await issue(env, "gw-a", 1, valid_ms=50)
    await asyncio.sleep(0.1)
    assert (await bind(env, late, "gw-a"))[0] is False


async def test_dead_gateways_spares_bound_are_billed_unbound_released_without_a_row(
    env: Env,
) -> None:
    await env.gateways.beat("gw-alive", 30)
    # Valid for a minute: the first sweep must find them unexpired however slow the machine
    # is; they are expired below by moving their expiry into the past.
    live = await issue(env, "gw-alive", 2, valid_ms=60_000)
    dead = await issue(env, "gw-dead", 4, valid_ms=60_000)
    bound_known, bound_unknown = dead[0], dead[1]
    _, rid_known = await bind(env, bound_known, "gw-dead")
    _, rid_unknown = await bind(env, bound_unknown, "gw-dead")
    ok, rid_live = await bind(env, live[0], "gw-alive")
    assert ok
    # The relay recorded the provider's usage of one (by the spare's id, as the gateway
    # names its reservation).
    recorder = UsageRecorder(env.quota, linger=0.005, max_pending=10)
    recorder.start()
    request = relay_request(env, rid_known)
    request.reservation_id = bound_known
    recorder.ended(request, USAGE, status=200, upstream_ms=42)
    await recorder.close()
    before = await env.used()
    # The dead gateway's bound spares are settled as any request's reservation; unbound
    # ones not yet expired are left (their gateway may still bind them).
    sweeper = env.sweeper()
    assert await sweeper.sweep_once() == 2
    assert sweeper.spares_released == 0
    for spare in (*dead[2:], live[1]):
        await env.redis.hset(env.ns.user_key(env.user_id, "rsv", spare), "sp", 1)
    # Once expired, every unbound spare, the living gateway's too, is released with no row.
    assert await sweeper.sweep_once() == 0
    assert sweeper.spares_released == 3
    real = quota_of(PRICING, USAGE)
    row = await env.row(rid_known)
    assert row is not None and (row["error_code"], row["quota"]) == (RECOVERED_CODE, real)
    row = await env.row(rid_unknown)
    assert row is not None and (row["error_code"], row["quota"]) == (SWEPT_CODE, AMOUNT)
    assert await env.row(rid_live) is None  # its gateway lives: its request is running
    assert await env.used() == before + real + AMOUNT
    assert await rsvd(env) == (AMOUNT, AMOUNT)  # the living gateway's bound spare only
    for spare in (*dead[2:], live[1]):
        assert not await env.redis.exists(env.ns.user_key(env.user_id, "rsv", spare))
    rows = await env.pg.fetchval(
        "SELECT count(*) FROM logs WHERE request_id LIKE '%.s%' AND token_id = $1", env.token_id
    )
    assert rows == 0  # no row ever names a spare
