"""Two billing processes share the durable consumer: every request is billed exactly once,
whichever process pulls its event, and the daily rollups agree with the ledger.

This module also holds the isolated stack the ledger tests use (``ledger_env``): a namespace,
database and set of ports of their own, so that killing billing or restarting NATS and Postgres
never touches the session's shared stack (see ``test_ledger_crashes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import nats
import openai
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests import admin_writes
from tests.conftest import NATS_URL, PG_ADMIN_DSN, REDIS_URL
from unigate.db import bound_namespace
from unigate.db.migrate import ensure_database, migrate
from unigate.namespace import Namespace
from unigate.redisconn import connect_redis
from unigate.v1 import events_pb2
from unigate_cli.devstack import Stack, StackConfig, StackPorts, free_port, ready_timeout

MODEL = "gpt-4o-mini"


@dataclass
class LedgerEnv:
    """A whole stack of its own (with the simulator as a process) and clients to its stores."""

    stack: Stack
    ns: Namespace
    dsn: str
    pg: asyncpg.Pool
    redis: Redis
    nc: NATS
    channel_id: int

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    @property
    def base_url(self) -> str:
        return self.stack.gateway_url + "/v1"

    async def new_token(
        self, *, remain_quota: int = 0, unlimited: bool = True
    ) -> admin_writes.NewToken:
        return await admin_writes.create_token(
            self.pg,
            user_id=1,
            name="ledger-test",
            remain_quota=remain_quota,
            unlimited_quota=unlimited,
        )


@contextlib.asynccontextmanager
async def ledger_env(
    log_dir: Path,
    *,
    pg_admin_dsn: str = PG_ADMIN_DSN,
    redis_url: str = REDIS_URL,
    nats_url: str = NATS_URL,
    **extra_env: str,
) -> AsyncIterator[LedgerEnv]:
    """Create, start, and afterwards remove everything: the database (dropped WITH (FORCE)),
    the namespace's Redis keys and its JetStream stream. A test that stops Postgres or Redis
    passes servers of its own (``tests/e2e/own_servers.py``)."""
    name = "t" + secrets.token_hex(5)
    ns = Namespace(name)
    dsn = urlunsplit(urlsplit(pg_admin_dsn)._replace(path=f"/unigate_{name}"))
    await ensure_database(dsn)
    stack = Stack(
        StackConfig(
            sql_dsn=dsn,
            namespace=name,
            secret_key=secrets.token_urlsafe(32),
            redis_url=redis_url,
            nats_url=nats_url,
            ports=StackPorts.free(),
            simulator_key="sk-sim-" + secrets.token_hex(20),
            log_dir=log_dir,
            extra_env=extra_env,
        )
    )
    redis = connect_redis(redis_url, max_connections=8)
    pg: asyncpg.Pool | None = None
    nc: NATS | None = None
    try:
        await migrate(dsn, root_password="test-root-password")
        pg = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        assert pg is not None
        # Quota keys carry the database's identity, as the services build them.
        ns = await bound_namespace(pg, name)
        channel_id = await admin_writes.create_channel(
            pg,
            secret_key=stack.config.secret_key,
            type=1,
            name="simulator",
            key=stack.config.simulator_key,
            base_url=stack.simulator_url,
            models=MODEL,
        )
        # Blocking (it polls readiness): off the event loop, which other fixtures share.
        await asyncio.to_thread(stack.start, 60.0)
        nc = await nats.connect(
            servers=nats_url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        yield LedgerEnv(stack, ns, dsn, pg, redis, nc, channel_id)
    finally:
        await asyncio.to_thread(stack.stop)
        if nc is not None:
            await nc.close()
        if pg is not None:
            await pg.close()
        await _remove(ns, redis, pg_admin_dsn, nats_url)


async def _remove(ns: Namespace, redis: Redis, pg_admin_dsn: str, nats_url: str) -> None:
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "unigate_{ns.name}" WITH (FORCE)')
    finally:
        await conn.close()
    keys = [k async for k in redis.scan_iter(match=ns.unbound.redis_key("*"), count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    nc = await nats.connect(servers=nats_url.split(","))
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(ns.usage_stream)
    finally:
        await nc.close()


async def wait_published(gateway_metrics: str, deadline: float) -> None:
    """Until the gateway holds no usage event JetStream has not acknowledged (it lets events
    gather for a few milliseconds before publishing them). A gateway that is down holds none
    any more."""
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                page = (await http.get(gateway_metrics + "/metrics")).text
            except httpx.HTTPError:
                return
            [held] = [
                s.value
                for f in text_string_to_metric_families(page)
                for s in f.samples
                if s.name == "unigate_gateway_usage_buffer_events"
            ]
            if held == 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the gateway did not publish its usage events")


async def wait_drained(env: LedgerEnv, within: float = 60.0) -> None:
    """Until the gateway has published every event and billing has acked everything in the
    stream (so the ledger is final)."""
    deadline = time.monotonic() + within
    await wait_published(f"http://127.0.0.1:{env.stack.config.ports.gateway_ops}", deadline)
    info = None
    while time.monotonic() < deadline:
        try:
            last = (await env.js.stream_info(env.ns.usage_stream)).state.last_seq
            info = await env.js.consumer_info(env.ns.usage_stream, env.ns.billing_consumer)
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.2)  # NATS is coming back
            continue
        acked = (info.ack_floor.stream_seq or 0) >= last
        if acked and not info.num_ack_pending and not info.num_pending:
            return
        await asyncio.sleep(0.1)
    # What billing said of it (its warnings and errors) is the lead to why.
    logs = env.stack.config.log_dir
    log = logs / "billing.log" if logs is not None else None
    lines = log.read_text().splitlines() if log is not None and log.exists() else []
    said = [line for line in lines if '"level":"info"' not in line]
    raise AssertionError(f"billing did not drain the usage stream: {info}; billing: {said[-20:]}")


async def stream_events(env: LedgerEnv) -> list[events_pb2.UsageEvent]:
    """Every event in the usage stream (what the gateways published), read by an ephemeral
    consumer of the test's own, so billing's durable consumer is not disturbed."""
    js = env.js
    last = (await js.stream_info(env.ns.usage_stream)).state.last_seq
    sub = await js.pull_subscribe(
        env.ns.usage_subjects,
        stream=env.ns.usage_stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0
        ),
    )
    events: list[events_pb2.UsageEvent] = []
    seen = 0
    try:
        while seen < last:
            for msg in await sub.fetch(1000, timeout=5.0):
                seen = max(seen, msg.metadata.sequence.stream)
                events.extend(events_pb2.UsageBatch.FromString(msg.data).events)
    finally:
        await sub.unsubscribe()
    return events


async def token_ledger(pg: asyncpg.Pool, token_id: int) -> tuple[int, int, int, int]:
    """(consume rows, distinct request ids, sum of their quota, the token's used_quota)."""
    row = await pg.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT request_id) AS d, coalesce(sum(quota), 0) AS q"
        " FROM logs WHERE type = 2 AND token_id = $1",
        token_id,
    )
    used = await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token_id)
    return row["n"], row["d"], row["q"], used


async def assert_rollups_match_ledger(pg: asyncpg.Pool) -> None:
    """usage_daily holds exactly the per-day, per-key totals of the consume rows."""
    expected = await pg.fetch(
        "SELECT date '1970-01-01' + (created_at / 86400)::int AS day, user_id, token_id,"
        " channel_id, model_name, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,"
        " sum(completion_tokens) AS completion_tokens, sum(quota) AS quota"
        " FROM logs WHERE type = 2 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    )
    actual = await pg.fetch(
        "SELECT day, user_id, token_id, channel_id, model_name, requests, prompt_tokens,"
        " completion_tokens, quota FROM usage_daily ORDER BY 1, 2, 3, 4, 5"
    )
    assert [tuple(r) for r in actual] == [tuple(r) for r in expected]


def run_cli(env: LedgerEnv, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``unigate ARGS`` against this stack (its database, Redis, NATS and namespace)."""
    done = subprocess.run(
        [sys.executable, "-m", "unigate_cli", *args],
        env=env.stack.config.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done


def assert_audit_clean(env: LedgerEnv) -> None:
    """``unigate audit`` over everything: no drift between the ledger, the balances, the
    rollups and Redis."""
    done = run_cli(env, "audit")
    assert done.stdout.startswith("no drift ("), done.stdout


class DeliveryTap:
    """Counts, per billing process (per pull inbox), the usage messages JetStream delivered to
    it for the first time."""

    def __init__(self, nc: NATS, ns: Namespace) -> None:
        self._nc = nc
        self._stream, self._consumer = ns.usage_stream, ns.billing_consumer
        self._subs: list[Subscription] = []
        self.first: dict[str, int] = {}

    async def watch(self, inbox: str) -> None:
        self.first[inbox] = 0

        async def count(msg: Msg) -> None:
            if not msg.reply.startswith("$JS.ACK."):
                return  # a status message (no messages, timeout), not a delivery
            meta = msg.metadata
            ours = (meta.stream, meta.consumer) == (self._stream, self._consumer)
            if ours and meta.num_delivered == 1:
                self.first[inbox] += 1

        self._subs.append(await self._nc.subscribe(inbox, cb=count))

    async def close(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()


async def tap_deliveries(env: LedgerEnv, processes: int, within: float = 10.0) -> DeliveryTap:
    ns = env.ns
    inboxes: set[str] = set()
    all_seen = asyncio.Event()

    async def pull_request(msg: Msg) -> None:
        inboxes.add(msg.reply)
        if len(inboxes) >= processes:
            all_seen.set()

    # Idle billing processes re-issue a pull request at least every second.
    sub = await env.nc.subscribe(
        f"$JS.API.CONSUMER.MSG.NEXT.{ns.usage_stream}.{ns.billing_consumer}", cb=pull_request
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), within)
    await sub.unsubscribe()
    assert len(inboxes) == processes, f"pull inboxes seen: {inboxes}"
    tap = DeliveryTap(env.nc, ns)
    for inbox in inboxes:
        await tap.watch(inbox)
    return tap


class ExtraBilling:
    """A second billing process of the same stack (same namespace, database and consumer)."""

    def __init__(self, env: LedgerEnv) -> None:
        ops_port = free_port()
        full_env = {
            **env.stack.config.env(),
            "BILLING_LISTEN": f"127.0.0.1:{free_port()}",
            "BILLING_OPS_PORT": str(ops_port),
        }
        assert env.stack.config.log_dir is not None
        self.log_path = env.stack.config.log_dir / f"billing-{ops_port}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unigate_billing"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ready_url = f"http://127.0.0.1:{ops_port}/readyz"

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or ready_timeout())
        while True:
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("second billing did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LedgerEnv]:
    async with ledger_env(tmp_path_factory.mktemp("parallel-billing")) as e:
        yield e


@pytest.fixture(scope="module")
async def second_billing(env: LedgerEnv) -> AsyncIterator[ExtraBilling]:
    billing = ExtraBilling(env)
    try:
        await asyncio.to_thread(billing.wait_ready)
        yield billing
    finally:
        await asyncio.to_thread(billing.stop)


async def test_two_billing_processes_bill_every_request_once(
    env: LedgerEnv, second_billing: ExtraBilling
) -> None:
    # Which billing process each usage message went to. A pull consumer's messages go to the
    # inbox its pull requests name as their reply subject, one inbox per process; watching
    # the pull requests finds both inboxes, and a tap on each counts what it was delivered.
    deliveries = await tap_deliveries(env, processes=2)

    budget = 10**9
    limited = await env.new_token(remain_quota=budget, unlimited=False)
    unlimited = await env.new_token()
    user_before = await env.pg.fetchrow("SELECT quota, used_quota FROM users WHERE id = 1")
    clients = [
        openai.AsyncOpenAI(api_key=t.key, base_url=env.base_url, max_retries=0, timeout=60)
        for t in (limited, unlimited)
    ]
    n, in_flight = 300, asyncio.Semaphore(16)

    async def call(i: int) -> None:
        client = clients[i % 2]
        async with in_flight:
            messages: list[ChatCompletionMessageParam] = [
                {"role": "user", "content": f"parallel billing request {i}"}
            ]
            if i % 3:
                resp = await client.chat.completions.create(model=MODEL, messages=messages)
                assert resp.choices[0].message.content
            else:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=messages, stream=True
                )
                assert [c async for c in stream]

    try:
        await asyncio.gather(*(call(i) for i in range(n)))
        await wait_drained(env)
    finally:
        await deliveries.close()

    total = 0
    for token, expected in ((limited, n // 2), (unlimited, n - n // 2)):
        rows, distinct, quota, used = await token_ledger(env.pg, token.id)
        assert (rows, distinct) == (expected, expected)
        assert used == quota > 0
        total += quota
    remain = await env.pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", limited.id)
    assert remain == budget - (await token_ledger(env.pg, limited.id))[2]
    user_after = await env.pg.fetchrow("SELECT quota, used_quota FROM users WHERE id = 1")
    assert user_after["used_quota"] - user_before["used_quota"] == total
    assert user_before["quota"] - user_after["quota"] == total
    await assert_rollups_match_ledger(env.pg)

    # Both processes took part: each was delivered usage messages for the first time (so it
    # applied them, nobody else had them).
    assert all(deliveries.first.values()), f"first deliveries by process: {deliveries.first}"
    info = await env.js.consumer_info(env.ns.usage_stream, env.ns.billing_consumer)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert_audit_clean(env)


async def test_redelivered_events_change_neither_ledger_nor_rollups(env: LedgerEnv) -> None:
    # Whatever is in the stream by now (the test above, or a few requests of our own).
    token = await env.new_token()
    async with openai.AsyncOpenAI(
        api_key=token.key, base_url=env.base_url, max_retries=0, timeout=60
    ) as c:
        for i in range(3):
            await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"once more {i}"}]
            )
    await wait_drained(env)
    events = await stream_events(env)
    before_logs = await env.pg.fetchval("SELECT count(*) FROM logs")
    before_daily = await env.pg.fetch("SELECT * FROM usage_daily ORDER BY 1, 2, 3, 4, 5")
    before_users = await env.pg.fetch("SELECT id, quota, used_quota FROM users ORDER BY id")
    # Everything again, in batches, under new message ids so that JetStream's de-duplication
    # cannot hide them: only the ledger's own idempotency stands in the way.
    for i in range(0, len(events), 50):
        data = events_pb2.UsageBatch(events=events[i : i + 50]).SerializeToString()
        await env.js.publish(env.ns.usage_subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex})
    await wait_drained(env)
    assert await env.pg.fetchval("SELECT count(*) FROM logs") == before_logs
    assert await env.pg.fetch("SELECT * FROM usage_daily ORDER BY 1, 2, 3, 4, 5") == before_daily
    assert await env.pg.fetch("SELECT id, quota, used_quota FROM users ORDER BY id") == before_users
    await assert_rollups_match_ledger(env.pg)
    assert_audit_clean(env)


async def test_audit_finds_each_drift_and_its_size(env: LedgerEnv) -> None:
    token = await env.new_token(remain_quota=10**8, unlimited=False)
    async with openai.AsyncOpenAI(
        api_key=token.key, base_url=env.base_url, max_retries=0, timeout=60
    ) as c:
        for i in range(3):
            await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"audited {i}"}]
            )
    await wait_drained(env)
    assert_audit_clean(env)
    remain, used = await env.pg.fetchrow(
        "SELECT remain_quota, used_quota FROM tokens WHERE id = $1", token.id
    )
    day = await env.pg.fetchrow(
        "SELECT day, user_id, channel_id, model_name, quota FROM usage_daily WHERE token_id = $1",
        token.id,
    )
    # Behind the ledger's back: a balance edited in Postgres (Redis still caches the old one),
    # a used quota bumped, a rollup changed.
    await env.pg.execute(
        "UPDATE tokens SET remain_quota = remain_quota - 1234, used_quota = used_quota + 77"
        " WHERE id = $1",
        token.id,
    )
    await env.pg.execute(
        "UPDATE usage_daily SET quota = quota + 5 WHERE token_id = $1 AND day = $2",
        token.id,
        day["day"],
    )
    try:
        done = run_cli(env, "audit", ok=False)
        assert done.returncode == 1, done.stderr
        lines = done.stdout.splitlines()
        assert lines, done.stderr
        assert lines[0] == "check\tsubject\texpected\tactual\tsize"
        rollup = (
            f"{day['day']} user {day['user_id']} token {token.id} channel {day['channel_id']}"
            f" {day['model_name']}"
        )
        q = day["quota"]
        expected = {
            f"redis.token_balance\ttoken {token.id}\t{remain - 1234}\t{remain}\t+1234",
            f"token.used_quota\ttoken {token.id}\t{used + 5}\t{used + 77}\t+72",
            f"usage_daily.quota\t{rollup}\t{q}\t{q + 5}\t+5",
        }
        assert expected <= set(lines[1:]), lines
        # And the rollup's change shows in the user's and the channel's used quota too.
        others = sorted(line.split("\t")[0] for line in set(lines[1:]) - expected)
        assert others == ["channel.used_quota", "user.used_quota"], lines
        assert done.stderr.startswith("5 drift(s) in ")
    finally:
        await env.pg.execute(
            "UPDATE tokens SET remain_quota = $2, used_quota = $3 WHERE id = $1",
            token.id,
            remain,
            used,
        )
        await env.pg.execute(
            "UPDATE usage_daily SET quota = quota - 5 WHERE token_id = $1 AND day = $2",
            token.id,
            day["day"],
        )
    assert_audit_clean(env)
