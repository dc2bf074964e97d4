"""Routing and resilience through the gateway with the openai SDK, with faults injected in
provider simulators: weights, priorities, failover, cooldown and recovery, auto-disable and
re-enable, streams cut by the provider and clients that leave."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import openai
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer, broadcast_change
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate_cli.devstack import Stack
from unigate_sim.openai import Fault, count_prompt_tokens, create_app

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
SERVER_ERROR = {
    "error": {
        "message": "The server had an error",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


class Provider:
    """One more simulated provider with its own calls and faults."""

    def __init__(self) -> None:
        self.server = ThreadedServer(create_app({SIM_KEY}))
        self.server.start()

    @property
    def app(self) -> Starlette:
        app: Starlette = self.server.server.config.app
        return app

    @property
    def calls(self) -> int:
        return len(self.app.state.calls)


@pytest.fixture
def providers() -> Iterator[Callable[[], Provider]]:
    made: list[Provider] = []

    def make() -> Provider:
        made.append(Provider())
        return made[-1]

    yield make
    for p in made:
        p.server.stop()


async def channel(
    pg: asyncpg.Pool, secret_key: str, provider: Provider, model: str, **kw: Any
) -> int:
    return await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name="route",
        key=kw.pop("key", SIM_KEY),
        base_url=provider.server.url,
        models=model,
        model_mapping={model: "gpt-4o-mini"},
        **kw,
    )


def model_name() -> str:
    return "route-" + secrets.token_hex(4)


async def run_many(n: int, call: Callable[[], Awaitable[Any]], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(n)))


async def test_weights_priorities_and_disabled_channels(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    light, heavy, off, backup = providers(), providers(), providers(), providers()
    model = model_name()
    await channel(pg, secret_key, light, model, weight=1, priority=5)
    await channel(pg, secret_key, heavy, model, weight=3, priority=5)
    disabled = await channel(pg, secret_key, off, model, weight=50, priority=5)
    await pg.execute("UPDATE channels SET status = 2 WHERE id = $1", disabled)
    await channel(pg, secret_key, backup, model, weight=100, priority=0)

    n = 2000
    await run_many(n, lambda: client.chat.completions.create(model=model, messages=HELLO), 32)
    assert light.calls + heavy.calls == n
    assert abs(heavy.calls / n - 0.75) <= 0.04, (light.calls, heavy.calls)
    assert (off.calls, backup.calls) == (0, 0)


async def test_failing_channel_is_cooled_down_and_probed_back(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    redis: Redis,
    namespace: str,
    providers: Callable[[], Provider],
) -> None:
    flaky, steady = providers(), providers()
    model = model_name()
    flaky_id = await channel(pg, secret_key, flaky, model)
    await channel(pg, secret_key, steady, model)
    flaky.app.state.fail_next.extend([(500, SERVER_ERROR)] * 1000)

    await run_many(100, lambda: client.chat.completions.create(model=model, messages=HELLO))
    assert steady.calls == 100  # every request succeeded through the healthy channel
    # Cooled down after its first failures instead of taking half of the traffic.
    assert flaky.calls < 50
    assert await redis.hget(f"{namespace}:{{health}}:cooling", str(flaky_id)) is not None

    flaky.app.state.fail_next.clear()
    before = flaky.calls
    deadline = time.monotonic() + 20
    while await redis.hexists(f"{namespace}:{{health}}:fails", str(flaky_id)):
        assert time.monotonic() < deadline, "the recovered channel was never probed back in"
        await client.chat.completions.create(model=model, messages=HELLO)
        await asyncio.sleep(0.05)
    assert flaky.calls > before
    steady_before = steady.calls
    await run_many(100, lambda: client.chat.completions.create(model=model, messages=HELLO))
    assert flaky.calls - before > 20 and steady.calls - steady_before > 20


async def test_429_with_retry_after_fails_over_and_cools_for_as_long_as_asked(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    redis: Redis,
    namespace: str,
    providers: Callable[[], Provider],
) -> None:
    limited, steady = providers(), providers()
    model = model_name()
    limited_id = await channel(pg, secret_key, limited, model, priority=10)
    await channel(pg, secret_key, steady, model, priority=0)
    body = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    limited.app.state.faults.append(Fault(status=429, body=body, headers={"Retry-After": "20"}))
    reply = await client.chat.completions.create(model=model, messages=HELLO)
    assert reply.choices[0].message.content == "Echo: hello"
    assert (limited.calls, steady.calls) == (1, 1)
    await asyncio.sleep(0.3)
    until = int(await redis.hget(f"{namespace}:{{health}}:cooling", str(limited_id)) or 0)
    assert until / 1000 - time.time() > 15
    # The higher-priority channel is skipped while it cools.
    await run_many(20, lambda: client.chat.completions.create(model=model, messages=HELLO))
    assert (limited.calls, steady.calls) == (1, 21)


async def test_channel_hanging_past_its_timeout_fails_over(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    hanging, steady = providers(), providers()
    model = model_name()
    hanging_id = await channel(pg, secret_key, hanging, model, priority=10)
    await pg.execute("UPDATE channels SET timeout_ms = 300 WHERE id = $1", hanging_id)
    await channel(pg, secret_key, steady, model, priority=0)
    hanging.app.state.faults.extend([Fault(delay=5.0)] * 100)
    # In full-suite runs one test-side HTTP connection was seen to stall (not understood yet;
    # the relay's timeouts all fired on time), so this client may retry a stalled request.
    patient = client.with_options(timeout=20, max_retries=2)
    await run_many(100, lambda: patient.chat.completions.create(model=model, messages=HELLO))
    assert steady.calls >= 100
    assert 1 <= hanging.calls < 50


async def test_invalid_key_disables_channel_and_scheduler_re_enables_it(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    broken, steady = providers(), providers()
    model = model_name()
    bad_key = "sk-revoked-" + secrets.token_hex(8)
    broken_id = await channel(pg, secret_key, broken, model, priority=10, key=bad_key)
    await channel(pg, secret_key, steady, model, priority=0)

    reply = await client.chat.completions.create(model=model, messages=HELLO)
    assert reply.choices[0].message.content == "Echo: hello"
    _, reason = await _eventually(
        lambda: pg.fetchrow("SELECT status, status_reason FROM channels WHERE id = $1", broken_id),
        lambda row: row["status"] == 3,
    )
    assert "upstream_auth_failed" in reason
    assert bad_key not in reason
    assert (
        await pg.fetchval("SELECT count(*) FROM logs WHERE type = 4 AND channel_id = $1", broken_id)
        == 1
    )
    await run_many(10, lambda: client.chat.completions.create(model=model, messages=HELLO))
    assert steady.calls == 11

    broken.app.state.api_keys.add(bad_key)  # the provider accepts the key again
    await _eventually(
        lambda: pg.fetchval("SELECT status FROM channels WHERE id = $1", broken_id),
        lambda s: s == 1,
        within=15,
    )
    before = broken.calls
    await run_many(5, lambda: client.chat.completions.create(model=model, messages=HELLO))
    assert broken.calls == before + 5  # priority 10 again


async def _eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 5
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r}"
        await asyncio.sleep(0.1)


async def test_stream_cut_by_provider_ends_with_an_error_event_and_one_ledger_row(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    sim_app.state.faults.append(Fault(cut_after=4))
    text = ""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        messages=[{"role": "user", "content": "one two three four five six seven eight"}],
    )
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert "ended before it was complete" in str(info.value)
    assert text.startswith("Echo")
    assert len(sim_app.state.calls) == 1  # no retry once bytes went out
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["status_code"] == 502 and row["estimated"]
    assert row["completion_tokens"] > 0


async def test_client_leaving_mid_stream_closes_upstream_and_bills_what_was_sent(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    sim_app.state.faults.append(Fault(frame_delay=0.1))
    words = " ".join(f"word{i}" for i in range(100))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": words}]
    )
    received = 0
    async for _ in stream:
        received += 1
        if received == 5:
            break
    await stream.close()
    left_at = time.monotonic()
    endings = sim_app.state.stream_endings
    await _eventually(lambda: asyncio.sleep(0, len(endings)), lambda n: n == 1, within=3)
    assert endings[0].how == "abandoned"
    assert endings[0].at - left_at < 1.0
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert (row["status_code"], row["error_code"]) == (499, "client_closed")
    assert 0 < row["completion_tokens"] < 100


async def test_slow_channel_gets_less_traffic_from_its_moving_average(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    fast, slow = providers(), providers()
    slow.app.state.faults.extend(Fault(delay=0.25) for _ in range(1000))
    model = model_name()
    await channel(pg, secret_key, fast, model, weight=1, priority=0)
    await channel(pg, secret_key, slow, model, weight=1, priority=0)

    def call() -> Awaitable[Any]:
        return client.chat.completions.create(model=model, messages=HELLO)

    # Equal weights: until the relays report averages over enough calls (MIN_CALLS), both
    # get traffic.
    await run_many(80, call, 8)
    assert fast.calls > 0 and slow.calls > 0
    # Relays report once a second; auth reads the averages with its health snapshot.
    await asyncio.sleep(2.5)
    before = slow.calls, fast.calls
    await run_many(300, call, 8)
    slow_share = (slow.calls - before[0]) / 300
    # 0.25 s against a few ms: the slow channel is held at the minimum share (5%), far
    # below the 50% its weight alone would give it; it still gets a trickle to show recovery.
    assert slow_share < 0.2, slow_share
    assert slow.calls > before[0] or slow_share == 0


async def test_channel_system_prompt_is_prepended(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    provider = providers()
    model = model_name()
    await channel(pg, secret_key, provider, model, system_prompt="Answer in French.")
    reply = await client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello"},
        ],
    )
    assert reply.choices[0].message.content == "Echo: hello"
    sent = provider.app.state.calls[-1]["body"]["messages"]
    assert sent == [
        {"role": "system", "content": "Answer in French."},
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello"},
    ]
    # The provider bills the operator's prompt too, and the ledger says what it billed.
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_prompt_tokens(sent)


async def test_retry_times_option_overrides_the_gateways_setting(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    stack: Stack,
    secret_key: str,
    providers: Callable[[], Provider],
) -> None:
    flaky, steady = providers(), providers()
    model = model_name()
    await channel(pg, secret_key, flaky, model, priority=10)
    await channel(pg, secret_key, steady, model, priority=0)
    flaky.app.state.fail_next.extend([(500, SERVER_ERROR)] * 10)
    once = client.with_options(max_retries=0)
    # The operator allows no further channel: the first failure is the answer.
    await pg.execute(
        "INSERT INTO options (key, value) VALUES ('RetryTimes', '0')"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
    await broadcast_change(stack, "option", [])
    try:
        with pytest.raises(openai.APIStatusError) as failed:
            await once.chat.completions.create(model=model, messages=HELLO)
        assert failed.value.status_code >= 500
        assert (flaky.calls, steady.calls) == (1, 0)
    finally:
        await pg.execute("DELETE FROM options WHERE key = 'RetryTimes'")
        await broadcast_change(stack, "option", [])
