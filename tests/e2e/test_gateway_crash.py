"""A gateway SIGKILLed under load loses no usage the provider reported.

Real processes (``ledger_env``: its own database, namespace and ports) plus a second gateway
that is killed with SIGKILL while unary calls and streams run through it, some of them just
answered (their usage events still in its memory: its publisher lingers 1 s here so that
there are many) and some slow streams mid-way. The reservation timeout is the production
default (15 minutes), so only the dead-gateway detection can settle the orphans in time:

* every request the client received in full is billed exactly at the usage the provider
  reported (the relay's record stands in for the lost event);
* every orphaned reservation is settled within 60 s of the kill (the streams cut off mid-way
  at their reservation, as nothing is known of their usage);
* a slow stream on the living gateway, longer than that, is never swept;
* no request is billed twice, and the balances equal the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import SupportsIndex

import httpx
import orjson
import pytest

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, ExtraGateway, ThreadedServer
from tests.e2e.test_metrics import scrape
from tests.e2e.test_metrics import total as metric_total
from tests.e2e.test_parallel_billing import (
    MODEL,
    LedgerEnv,
    assert_rollups_match_ledger,
    ledger_env,
    token_ledger,
)
from tests.e2e.test_spare_reservations import spares_served
from unigate.charge import quota_of
from unigate.quota import QuotaStore
from unigate.v1 import auth_pb2, common_pb2
from unigate_billing.sweeper import RECOVERED_CODE, SWEPT_CODE
from unigate_sim.openai import create_app
from unigate_sim.openai.faults import Fault

# Streams of 8 frames: a frame every 0.5 s keeps the dead gateway's slow streams in flight
# when it is killed; one every 5 s keeps the living gateway's stream open for 40 s, longer
# than the dead gateway's orphans take to be settled.
SLOW_MODEL, SLOW_FRAME = "crash-slow", 0.5
LONG_MODEL, LONG_FRAME = "crash-long", 5.0
WORKERS = 8
SLOW_WORKERS = 2
LOAD_SECONDS = 3.0
SETTLE_WITHIN = 60.0
HELLO = [{"role": "user", "content": "hello there"}]
QUOTA = 10**9


class Paced(list[Fault]):
    """A simulator fault queue that is never empty: every stream trickles."""

    def __init__(self, frame_delay: float) -> None:
        super().__init__()
        self.frame_delay = frame_delay

    def __bool__(self) -> bool:
        return True

    def pop(self, index: SupportsIndex = -1) -> Fault:
        return Fault(frame_delay=self.frame_delay)


def paced_simulator(frame_delay: float) -> Iterator[ThreadedServer]:
    app = create_app({SIM_KEY})
    app.state.faults = Paced(frame_delay)
    server = ThreadedServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[ThreadedServer]:
    yield from paced_simulator(SLOW_FRAME)


@pytest.fixture(scope="module")
def long_sim() -> Iterator[ThreadedServer]:
    yield from paced_simulator(LONG_FRAME)


@pytest.fixture(scope="module")
async def env(
    tmp_path_factory: pytest.TempPathFactory, slow_sim: ThreadedServer, long_sim: ThreadedServer
) -> AsyncIterator[LedgerEnv]:
    # RESERVATION_TIMEOUT, the sweep interval and the heartbeat TTL are left at their
    # production defaults (900 s, 10 s, 10 s).
    async with ledger_env(tmp_path_factory.mktemp("gateway-crash")) as e:
        for name, sim in ((SLOW_MODEL, slow_sim), (LONG_MODEL, long_sim)):
            await admin_writes.create_channel(
                e.pg,
                secret_key=e.stack.config.secret_key,
                type=1,
                name=name,
                key=SIM_KEY,
                base_url=sim.url,
                models=name,
                model_mapping={name: MODEL},
            )
        yield e


@dataclass
class Outcome:
    """What a client saw of one request."""

    model: str
    stream: bool
    request_id: str = ""
    # The usage the answer carried (the usage chunk of a stream), when it came in full.
    usage: dict[str, int] | None = None
    error: str = ""


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    stop: bool = False


async def one(http: httpx.AsyncClient, url: str, key: str, model: str, stream: bool) -> Outcome:
    out = Outcome(model, stream)
    body: dict[str, object] = {"model": model, "messages": HELLO}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    try:
        async with http.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as resp:
            out.request_id = resp.headers["x-request-id"]  # the ledger's id
            if resp.status_code != 200:
                out.error = f"status {resp.status_code}"
                return out
            if not stream:
                out.usage = orjson.loads(await resp.aread())["usage"]
                return out
            usage, done = None, False
            async for line in resp.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = orjson.loads(line[6:])
                    if chunk.get("usage"):
                        usage = chunk["usage"]
            # In full: the usage chunk and [DONE] both arrived (and the body ended cleanly).
            out.usage = usage if done else None
            if not done:
                out.error = "stream ended early"
    except httpx.HTTPError as exc:
        out.error = type(exc).__name__
    return out


async def drive(url: str, key: str, load: Load) -> None:
    async with httpx.AsyncClient(timeout=60) as http:

        async def worker(w: int) -> None:
            i = w
            while not load.stop:
                # Most workers alternate fast unary calls and streams; the last ones keep slow
                # streams going.
                model = SLOW_MODEL if w >= WORKERS - SLOW_WORKERS else MODEL
                stream = model == SLOW_MODEL or i % 2 == 1
                out = await one(http, url, key, model, stream)
                load.outcomes.append(out)
                i += 1
                if out.error and not out.request_id:
                    return  # the gateway is gone

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))


async def open_reservations(env: LedgerEnv, token_id: int) -> dict[str, bool]:
    """The token's open reservations, each with whether its gateway is alive."""
    open_ = await QuotaStore(env.redis, env.ns).stale_reservations(2**62, limit=100_000)
    mine = {
        r.reservation_id: r.gateway_id for r in open_ if r.token_id == token_id and r.gateway_id
    }
    pipe = env.redis.pipeline(transaction=False)
    for g in mine.values():
        pipe.exists(env.ns.unbound.redis_key("gw", g))
    alive = await pipe.execute()
    return {rid: bool(a) for rid, a in zip(mine, alive, strict=True)}


async def test_sigkilled_gateway_loses_no_usage(env: LedgerEnv) -> None:
    token = await env.new_token(remain_quota=QUOTA, unlimited=False)
    # The channels added by the fixture reach auth's routing cache within its TTL.
    async with httpx.AsyncClient(timeout=60) as http:
        deadline = time.monotonic() + 15
        while (await one(http, env.stack.gateway_url, token.key, SLOW_MODEL, True)).error:
            assert time.monotonic() < deadline, "the slow channel never became routable"
            await asyncio.sleep(0.5)
    warmed = await token_ledger(env.pg, token.id)

    gateway = await asyncio.to_thread(ExtraGateway, env.stack, USAGE_LINGER_MS="1000")
    load = Load()
    # The living gateway's long stream: open across the kill and the whole settling.
    async with httpx.AsyncClient(timeout=120) as http:
        long_stream = asyncio.create_task(
            one(http, env.stack.gateway_url, token.key, LONG_MODEL, True)
        )
        driving = asyncio.create_task(drive(gateway.url, token.key, load))
        await asyncio.sleep(LOAD_SECONDS)
        # The key is hot there: it is killed while serving requests from spare reservations
        # (bound ones in flight, unbound ones held), as well as ones auth authorized.
        deadline = time.monotonic() + 30
        while (served := await spares_served(gateway.ops_port)) < 10:
            assert time.monotonic() < deadline, "the gateway never served from spares"
            await asyncio.sleep(0.2)
        # ... and while it holds usage events it has not published (its publisher lingers
        # 1 s): what the relay's records must recover. Without this the kill could land in a
        # moment when none is held (seen once in CI: no event to recover).
        ops = f"http://127.0.0.1:{gateway.ops_port}/metrics"
        while metric_total(await scrape(ops), "unigate_gateway_usage_buffer_events") < 1:
            assert time.monotonic() < deadline, (
                "the gateway held no usage event",
                [o for o in load.outcomes if o.error][:5],
            )
            await asyncio.sleep(0.05)
        gateway.proc.kill()
        killed_at = time.monotonic()
        await asyncio.to_thread(gateway.proc.wait)
        load.stop = True
        await driving
        gateway.stop()

        # Every orphan is settled within a minute (the timeout is 15 minutes here) ...
        while True:
            open_now = await open_reservations(env, token.id)
            if len(open_now) <= 1:  # the living gateway's long stream
                break
            assert time.monotonic() - killed_at < SETTLE_WITHIN, f"still open: {open_now}"
            await asyncio.sleep(0.5)
        settled_after = time.monotonic() - killed_at
        # ... while the living gateway's stream, older than any of them, is left alone.
        assert not long_stream.done() and list(open_now.values()) == [True]
        long = await long_stream
    assert long.usage is not None, long.error
    assert list(open_now) == [long.request_id]
    assert settled_after < SETTLE_WITHIN

    full = [o for o in load.outcomes if o.usage is not None]
    cut = [o for o in load.outcomes if o.usage is None and o.request_id]
    assert len(full) > 20 and any(o.stream for o in full), load.outcomes
    assert any(o.model == SLOW_MODEL for o in cut), "no stream was in flight at the kill"
    every = [*full, *cut, long]

    # The ledger holds one row per request (the living gateway's events are in by now too).
    deadline = time.monotonic() + 30
    while True:
        rows = {
            r["request_id"]: r
            for r in await env.pg.fetch(
                "SELECT * FROM logs WHERE type = 2 AND token_id = $1", token.id
            )
        }
        if all(o.request_id in rows for o in every):
            break
        assert time.monotonic() < deadline, "requests missing from the ledger"
        await asyncio.sleep(0.5)

    # Whatever the client received in full is billed at the provider's usage, exactly.
    recovered = 0
    for o in [*full, long]:
        row = rows[o.request_id]
        assert o.usage is not None
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (
            o.usage["prompt_tokens"],
            o.usage["completion_tokens"],
            False,
        ), (o, dict(row))
        assert row["status_code"] == 200 and row["error_code"] in ("", RECOVERED_CODE)
        pricing = auth_pb2.Pricing(
            model_ratio=row["model_ratio"],
            completion_ratio=row["completion_ratio"],
            group_ratio=row["group_ratio"],
            cached_ratio=row["cached_ratio"],
        )
        usage = common_pb2.Usage(
            prompt_tokens=o.usage["prompt_tokens"],
            completion_tokens=o.usage["completion_tokens"],
        )
        assert row["quota"] == quota_of(pricing, usage) > 0
        assert row["quota"] < row["reserved_quota"]
        recovered += row["error_code"] == RECOVERED_CODE
    # The events the gateway held when it died were recovered from the relay's record.
    assert recovered > 0, [o for o in load.outcomes if o.error]
    print(
        f"\n{len(full)} answered in full ({recovered} recovered from relay records), "
        f"{len(cut)} cut off, orphans settled {settled_after:.1f} s after the kill"
    )
    assert rows[long.request_id]["error_code"] == ""
    # Streams cut off with their gateway: nothing known of their usage, the reservation.
    for o in cut:
        row = rows[o.request_id]
        assert row["error_code"] in (SWEPT_CODE, RECOVERED_CODE), dict(row)
        if row["error_code"] == SWEPT_CODE:
            assert row["quota"] == row["reserved_quota"] and row["estimated"]

    # No double charge: one row per request id, nothing left open, and the balances are
    # the ledger's.
    deadline = time.monotonic() + 30
    while await open_reservations(env, token.id):
        assert time.monotonic() < deadline, "the living gateway's stream never settled"
        await asyncio.sleep(0.2)
    n, distinct, total, used = await token_ledger(env.pg, token.id)
    assert n == distinct == len(rows) >= warmed[0] + len(every)
    # No row for a spare reservation: unbound ones were released with no charge.
    assert not [rid for rid in rows if ".s" in rid]
    print(f"{served:.0f} requests served from spare reservations before the kill")
    assert used == total
    remain = await env.pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id)
    assert remain == QUOTA - total
    cached = await env.redis.get(env.ns.user_key(1, "q", "t", token.id, "bal"))
    if cached is not None:
        assert int(cached) == remain
    assert int(await env.redis.get(env.ns.user_key(1, "q", "t", token.id, "rsvd")) or 0) == 0
    await assert_rollups_match_ledger(env.pg)
