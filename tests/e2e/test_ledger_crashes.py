"""The ledger stays exact through crashes and outages, and dead letters can be replayed.

The crash test drives requests through its own stack while billing is SIGKILLed and restarted
twice, NATS is restarted once and Postgres is down for ~10 s; afterwards the ledger must hold
exactly one row per request the gateway authorized, and balances and rollups must agree.

Careful: NATS and Postgres are the machine's shared servers. The test always brings them back
(and waits until they answer), but anything else using them during those seconds (another
test run on the same machine) sees the outage too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import nats
import pytest
import uvloop

from tests.conftest import NATS_URL, PG_ADMIN_DSN
from tests.e2e.test_parallel_billing import (
    MODEL,
    LedgerEnv,
    assert_audit_clean,
    assert_rollups_match_ledger,
    ledger_env,
    run_cli,
    stream_events,
    wait_drained,
)
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.quota import QuotaStore
from unigate.v1 import common_pb2, events_pb2

# How many requests must succeed (2xx). 10,000 fits the time budget on 2 cores at CONCURRENCY
# in flight; override with LEDGER_CRASH_REQUESTS for a quicker or a longer run.
REQUESTS = int(os.environ.get("LEDGER_CRASH_REQUESTS", "10000"))
CONCURRENCY = 32
POSTGRES_DOWN_SECONDS = 10.0

NATS_START = [
    "start-stop-daemon",
    "--start",
    "--oknodo",
    "--background",
    "--exec",
    "/usr/sbin/nats-server",
    "--",
    "-a",
    "127.0.0.1",
    "-p",
    "4222",
    "-js",
    "-sd",
    "/var/lib/nats-server",
]
# The machine's one Postgres cluster version, as `.ci/run` finds it.
PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else "15"
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main"]


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LedgerEnv]:
    async with ledger_env(
        tmp_path_factory.mktemp("ledger-crashes"),
        # Redeliver what a killed billing had fetched after 5 s instead of 30 s, so that the
        # test does not wait for it. Redelivering early is harmless: the ledger is idempotent.
        BILLING_ACK_WAIT="5",
    ) as e:
        yield e


# ---- dead letters -------------------------------------------------------------------------


def usage_event(token_id: int, request_id: str) -> events_pb2.UsageEvent:
    return events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=request_id,
        user_id=1,
        token_id=token_id,
        model=MODEL,
        quota=7,
        usage=common_pb2.Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7),
        status_code=200,
        created_at_ms=int(time.time() * 1000),
    )


async def dead_letter_ids(pg: asyncpg.Pool) -> set[int]:
    return {r["id"] for r in await pg.fetch("SELECT id FROM dead_letters")}


async def wait_dead_letters(pg: asyncpg.Pool, n: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while await pg.fetchval("SELECT count(*) FROM dead_letters") < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {n} dead letters")
        await asyncio.sleep(0.05)


async def test_dead_letters_replay_into_the_ledger_once(env: LedgerEnv) -> None:
    token = await env.new_token()
    single, a, b = (f"dl-{uuid.uuid4().hex}" for _ in range(3))
    # As consumer.decode stores them: one event taken out of a batch (here: one this billing
    # could not apply then but can now, as after an upgrade), and a whole message.
    await env.pg.executemany(
        "INSERT INTO dead_letters (subject, data, reason) VALUES ($1, $2, $3)",
        [
            (
                env.ns.usage_subject,
                usage_event(token.id, single).SerializeToString(),
                "unknown schema_version 2",
            ),
            (
                env.ns.usage_subject,
                events_pb2.UsageBatch(
                    events=[usage_event(token.id, a), usage_event(token.id, b)]
                ).SerializeToString(),
                "undecodable: simulated",
            ),
        ],
    )
    # And one that billing dead-letters itself: an event of a schema it does not know.
    future = f"dl-{uuid.uuid4().hex}"
    await env.js.publish(
        env.ns.usage_subject,
        events_pb2.UsageBatch(
            events=[events_pb2.UsageEvent(schema_version=99, request_id=future)]
        ).SerializeToString(),
    )
    await wait_dead_letters(env.pg, 3)
    first = await dead_letter_ids(env.pg)

    listed = run_cli(env, "deadletter", "list").stdout.splitlines()
    assert listed[0].split("\t") == [
        "id",
        "created_at",
        "replayed_at",
        "bytes",
        "subject",
        "reason",
    ]
    assert {int(line.split("\t")[0]) for line in listed[1:]} == first
    assert any(line.endswith("\tunknown schema_version 99") for line in listed)

    done = run_cli(env, "deadletter", "replay")
    assert done.stdout.strip().startswith("replayed 3 dead letter(s)")
    await wait_drained(env)
    rows = await env.pg.fetch(
        "SELECT request_id, quota FROM logs WHERE token_id = $1 ORDER BY request_id", token.id
    )
    assert sorted(r["request_id"] for r in rows) == sorted([single, a, b])
    assert await env.pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token.id) == 21
    # The unknown schema is still unknown: dead again, as the same single event. (Had replay
    # published the bare event instead of wrapping it in a batch, billing would have read an
    # empty batch.)
    await wait_dead_letters(env.pg, 4)
    again = await env.pg.fetchrow(
        "SELECT id, reason, data FROM dead_letters WHERE NOT (id = ANY($1::bigint[]))",
        list(first),
    )
    assert again["reason"] == "unknown schema_version 99"
    assert events_pb2.UsageEvent.FromString(again["data"]).request_id == future
    assert await env.pg.fetchval(
        "SELECT bool_and(replayed_at IS NOT NULL) FROM dead_letters WHERE id = ANY($1::bigint[])",
        list(first),
    )
    listed = run_cli(env, "deadletter", "list").stdout.splitlines()[1:]
    assert [int(line.split("\t")[0]) for line in listed] == [again["id"]]
    assert len(run_cli(env, "deadletter", "list", "--all").stdout.splitlines()[1:]) == 4

    # Replaying one again on purpose publishes it again; the ledger charges nothing twice.
    single_id = min(first)
    done = run_cli(env, "deadletter", "replay", "--id", str(single_id))
    assert done.stdout.strip() == f"replayed 1 dead letter(s): {single_id}"
    await wait_drained(env)
    assert await env.pg.fetchval("SELECT count(*) FROM logs WHERE token_id = $1", token.id) == 3
    assert await env.pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token.id) == 21
    await assert_rollups_match_ledger(env.pg)

    assert (
        "no dead letter with id"
        in run_cli(env, "deadletter", "replay", "--id", "999999", ok=False).stderr
    )
    assert_audit_clean(env)


# ---- crashes and outages --------------------------------------------------------------------


def nats_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def wait_gone(pid: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit")


async def wait_nats_healthy(within: float = 30.0) -> None:
    """Until JetStream answers (it has recovered its streams by then)."""
    deadline = time.monotonic() + within
    while True:
        try:
            nc = await nats.connect(NATS_URL, max_reconnect_attempts=0, connect_timeout=1)
            try:
                await nc.jetstream().account_info()
                return
            finally:
                await nc.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def postgres_running() -> bool:
    return subprocess.run([*PG_CTL, "status"], capture_output=True).returncode == 0


async def wait_postgres_healthy(within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=1)
            await conn.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def restart_nats() -> None:
    pids = nats_pids()
    assert len(pids) == 1, f"expected one nats-server, found {pids}"
    # SIGTERM: a restart, not a crash. JetStream's file store is what must survive it.
    os.kill(pids[0], signal.SIGTERM)
    await asyncio.to_thread(wait_gone, pids[0])
    await asyncio.to_thread(subprocess.run, NATS_START, check=True)
    await wait_nats_healthy()


async def postgres_outage(seconds: float) -> None:
    await asyncio.to_thread(subprocess.run, [*PG_CTL, "stop"], check=True)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(subprocess.run, [*PG_CTL, "start"], check=True)
    await wait_postgres_healthy()


async def restore_infrastructure() -> None:
    """Whatever happened: NATS and Postgres running and answering again."""
    if not nats_pids():
        await asyncio.to_thread(subprocess.run, NATS_START, check=True)
    if not await asyncio.to_thread(postgres_running):
        await asyncio.to_thread(subprocess.run, [*PG_CTL, "start"], check=True)
    await wait_nats_healthy()
    await wait_postgres_healthy()


@contextlib.asynccontextmanager
async def outage_lock() -> AsyncIterator[None]:
    """Machine-wide: two test runs on one machine (it happens) must not take the shared NATS
    and Postgres down under each other's feet, nor restart what the other just stopped."""
    path = Path(tempfile.gettempdir()) / "unigate-shared-infra-outage.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def crash_billing(env: LedgerEnv) -> None:
    await asyncio.to_thread(env.stack.stop_process, "billing", signal.SIGKILL)
    env.stack.start_process("billing")
    await asyncio.to_thread(env.stack.wait_ready, 60.0, ["billing"])


# Successes still required after the last outage is over, so that the services are seen to
# recover under traffic however small REQUESTS is.
AFTER_CHAOS = 500


@dataclass
class Load:
    """What the client saw: the ledger id and HTTP status of every answered request."""

    goal: int
    # Set when the last outage is over: the successes counted by then.
    chaos_over: int | None = None
    answers: dict[str, tuple[int, bool]] = field(default_factory=dict)  # id -> (status, stream)
    succeeded: int = 0
    failed: int = 0
    unidentified: int = 0
    transport_errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # Set by the test to stop the load early (the chaos failed), and by the load when it ends.
    abort: bool = False
    ended: bool = False

    async def reached(self, n: int) -> None:
        # Polled: the load runs on another thread's event loop (see run_load).
        while True:
            if self.succeeded >= n:
                return
            if self.ended:
                raise AssertionError(f"the load ended at {self.succeeded} successes, before {n}")
            await asyncio.sleep(0.02)

    @property
    def done(self) -> bool:
        if self.abort:
            return True
        if self.chaos_over is None:
            return False
        return self.succeeded >= max(self.goal, self.chaos_over + AFTER_CHAOS)


async def drive(env: LedgerEnv, key: str, load: Load) -> None:
    # aiohttp rather than httpx or the openai SDK: on 2 cores the client shares the CPU with
    # the whole stack, and httpx costs ~5 ms of CPU per request here against ~0.4 ms.
    async with aiohttp.ClientSession(
        env.stack.gateway_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=60.0),
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
    ) as http:

        async def one(i: int) -> tuple[int, str | None, bool]:
            stream = i % 4 == 0
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"crash test {i}"}],
                "stream": stream,
            }
            async with http.post("/v1/chat/completions", json=body) as resp:
                await resp.read()
                # The ledger's key: the gateway's own request id (we send no X-Request-Id).
                return resp.status, resp.headers.get("X-Request-Id"), stream

        async def worker(w: int) -> None:
            i = w
            while not load.done:
                i += CONCURRENCY
                sent = time.monotonic()
                try:
                    status, rid, stream = await one(i)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    load.transport_errors.append(
                        f"request {i} sent at {sent - load.started:.1f}s:"
                        f" {exc!r} after {time.monotonic() - sent:.1f}s"
                    )
                    await asyncio.sleep(0.2)
                    continue
                if rid is None:
                    load.unidentified += 1
                else:
                    load.answers[rid] = (status, stream)
                if 200 <= status < 300:
                    load.succeeded += 1
                else:
                    load.failed += 1
                    await asyncio.sleep(0.2)  # an outage: do not spin

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


def assert_same(name_a: str, a: Collection[str], name_b: str, b: Collection[str]) -> None:
    """Set equality with a short message (pytest's own diff of 10,000 ids is no use)."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    assert not only_a and not only_b, (
        f"{len(only_a)} {name_a} but not {name_b} (e.g. {sorted(only_a)[:3]}),"
        f" {len(only_b)} {name_b} but not {name_a} (e.g. {sorted(only_b)[:3]})"
    )


def run_load(env: LedgerEnv, key: str, load: Load) -> None:
    """The load on an event loop of its own, in a worker thread. On the test session's shared
    loop, after some other e2e modules had run, a few of the first connections were never
    watched for reading (their sockets sat in CLOSE-WAIT holding a whole response) and hung
    until the client timeout; a fresh loop is not exposed to whatever state causes that."""
    try:
        uvloop.run(drive(env, key, load))
    finally:
        load.ended = True


async def test_ledger_is_exact_through_crashes_and_outages(env: LedgerEnv) -> None:
    budget = 10**12
    token = await env.new_token(remain_quota=budget, unlimited=False)
    user_before = await env.pg.fetchrow("SELECT quota, used_quota FROM users WHERE id = 1")
    load = Load(goal=REQUESTS)
    events: list[str] = []
    started = time.monotonic()

    async def step(at: float, what: str, action: Callable[[], Awaitable[None]]) -> None:
        await load.reached(int(REQUESTS * at))
        t, ok = time.monotonic(), load.succeeded
        await action()
        events.append(f"{what} at {t - started:.1f}s ({ok} ok), {time.monotonic() - t:.1f}s")

    async def chaos() -> None:
        # Early enough that plenty of traffic follows the last recovery.
        await step(0.10, "billing SIGKILL", lambda: crash_billing(env))
        await step(0.20, "NATS restart", restart_nats)
        await step(0.30, "billing SIGKILL", lambda: crash_billing(env))
        await step(0.40, "Postgres outage", lambda: postgres_outage(POSTGRES_DOWN_SECONDS))
        load.chaos_over = load.succeeded

    async with outage_lock():
        try:
            loading = asyncio.create_task(asyncio.to_thread(run_load, env, token.key, load))
            try:
                await chaos()
            finally:
                # If the chaos failed, stop the load now (the outer finally repairs the rest).
                load.abort = load.chaos_over is None
                await loading
            events.append(f"load done at {time.monotonic() - started:.1f}s")
            await wait_drained(env, within=120.0)
            events.append(f"drained at {time.monotonic() - started:.1f}s")
        finally:
            # Shown with the test's output, on failure too.
            print(f"\n{load.succeeded} ok, {load.failed} failed; {'; '.join(events)}")
            await restore_infrastructure()
    assert len(events) == 6, events
    assert not load.transport_errors, load.transport_errors[:5]
    assert load.unidentified == 0
    assert load.succeeded >= REQUESTS

    # Connections in the test's pool died with Postgres; start afresh.
    await env.pg.expire_connections()
    published = {e.request_id for e in await stream_events(env) if e.token_id == token.id}
    rows = {
        r["request_id"]: r
        for r in await env.pg.fetch(
            "SELECT request_id, status_code, quota FROM logs WHERE type = 2 AND token_id = $1",
            token.id,
        )
    }
    # One row per request the gateway authorized, i.e. per usage event it published (an event
    # is published for every authorized request, whatever its outcome, and only for those): none
    # lost in the crashes, none applied twice on redelivery.
    assert_same("published", published, "billed", rows.keys())
    ok = {rid for rid, (status, _) in load.answers.items() if 200 <= status < 300}
    # Every success is billed; everything billed is a request this client sent and was answered.
    assert_same("succeeded", ok, "billed", ok & rows.keys())
    assert_same("billed", rows.keys(), "answered", rows.keys() & load.answers.keys())
    # And it is that request's row: for unary calls the row records the status the client got.
    for rid, row in rows.items():
        status, stream = load.answers[rid]
        if not stream:
            assert row["status_code"] == status, (rid, row["status_code"], status)
    n, distinct = await env.pg.fetchrow(
        "SELECT count(*), count(DISTINCT request_id) FROM logs WHERE token_id = $1", token.id
    )
    assert n == distinct == len(rows)

    charged = sum(r["quota"] for r in rows.values())
    used, remain = await env.pg.fetchrow(
        "SELECT used_quota, remain_quota FROM tokens WHERE id = $1", token.id
    )
    assert (used, remain) == (charged, budget - charged)
    user_after = await env.pg.fetchrow("SELECT quota, used_quota FROM users WHERE id = 1")
    assert user_after["used_quota"] - user_before["used_quota"] == charged
    assert user_before["quota"] - user_after["quota"] == charged
    await assert_rollups_match_ledger(env.pg)

    # Every reservation was released, by exactly one settlement.
    quota_keys = [
        env.ns.user_key(1, "q", "t", token.id, "rsvd"),
        env.ns.user_key(1, "q", "u", 1, "rsvd"),
    ]
    # Spare reservations a hot key's gateway did not use are released without a settlement,
    # by that gateway when its pool expires (about a second) or by the sweeper.
    deadline = time.monotonic() + 30
    while [int(v or 0) for v in await env.redis.mget(quota_keys)] != [0, 0]:
        if time.monotonic() > deadline:
            store = QuotaStore(env.redis, env.ns)
            left = await store.stale_reservations(int(time.time() * 1000) + 60_000, limit=50)
            raise AssertionError(f"reservations still open: {left}")
        await asyncio.sleep(0.2)
    assert (await QuotaStore(env.redis, env.ns).open_reservations())[0] == 0
    # And the audit agrees: ledger, balances, rollups and Redis, with no drift anywhere.
    assert_audit_clean(env)
