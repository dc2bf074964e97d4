"""Balances that never go negative and are spendable to the last unit, through the whole
stack: every generating request goes upstream with an output bound its payer can afford
(``x-unigate-max-tokens`` says so), its reservation is sized from that bound and never
exceeds what is left, and a reservation the balance limited is lowered to the real cost as
soon as the request ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import anthropic
import asyncpg
import httpx2
import openai
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests.e2e.provider_support import alias, create_mapped_channel, running
from tests.e2e.test_anthropic import CLAUDE_KEY, SONNET, Claude
from tests.e2e.test_auth_policies import new_key, new_user, sdk
from tests.e2e.test_hunyuan import Tencent
from tests.e2e.test_hunyuan import channel as hunyuan_channel
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate.namespace import Namespace
from unigate.output_bound import prompt_ratio, worst_cost
from unigate.pricing import price_for
from unigate.tokenizer import prompt_tokens
from unigate_cli.devstack import Stack

MODEL = "gpt-4o-mini"
HEADER = "x-unigate-max-tokens"
HI: Any = [{"role": "user", "content": "hi"}]


def burst_sdk(stack: Stack, key: str) -> openai.AsyncOpenAI:
    """A client for 200 requests at once. With the SDK's default pool (100 idle connections
    kept), a second such burst in one session left ~90 requests unanswered until their
    timeout, on main as well (a client-side pool problem: a separate client's requests were
    answered meanwhile); keeping every connection avoids it."""
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=stack.gateway_url + "/v1",
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )


async def _balances_sampler(
    pg: asyncpg.Pool, redis: Redis, ns: Namespace, token_id: int, user_id: int, low: list[int]
) -> None:
    """Record the lowest token balance seen in Postgres and in Redis (cached balance, and
    balance less open reservations, read atomically), until cancelled."""
    bal = ns.user_key(user_id, "q", "t", token_id, "bal")
    rsvd = ns.user_key(user_id, "q", "t", token_id, "rsvd")
    while True:
        low[0] = min(
            low[0], await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token_id)
        )
        pipe = redis.pipeline(transaction=True)
        pipe.get(bal)
        pipe.get(rsvd)
        cached, reserved = await pipe.execute()
        if cached is not None:
            low[1] = min(low[1], int(cached))
            low[2] = min(low[2], int(cached) - int(reserved or 0))
        await asyncio.sleep(0.01)


async def test_long_prompts_without_max_tokens_never_overspend(
    stack: Stack,
    pg: asyncpg.Pool,
    redis: Redis,
    namespace: str,
    sim_app: Starlette,
    channel_id: int,
) -> None:
    # The scenario: long prompts, long answers (the simulator echoes the prompt), no
    # max_tokens, 200 at once on a quota of 11,280. Before, 38 were served and the balance
    # ended at -8,176.
    quota = 11_280
    user_id = await new_user(pg, quota=10**9)
    token = await new_key(pg, user_id, remain_quota=quota)
    client = burst_sdk(stack, token.key)
    low = [quota, quota, quota]
    sampler = asyncio.create_task(
        _balances_sampler(pg, redis, Namespace(namespace), token.id, user_id, low)
    )

    def bound_of(headers: Any) -> int:
        # No header: the request went with no limit of unigate's own, its reservation
        # covering the model's whole published output limit.
        return int(headers.get(HEADER, 0))

    async def one(i: int) -> tuple[int, int, str] | None:
        text = f"request {i}: " + "lorem ipsum dolor sit amet, consectetur adipiscing. " * 600
        messages: Any = [{"role": "user", "content": text}]
        create = client.chat.completions.with_raw_response.create
        try:
            if i % 2:  # half of them streamed
                raw_stream = await create(
                    model=MODEL,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                chunks = [chunk async for chunk in raw_stream.parse()]
                usage = chunks[-1].usage
                assert usage is not None
                finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
                return bound_of(raw_stream.headers), usage.completion_tokens, str(finish)
            raw = await create(model=MODEL, messages=messages)
        except openai.PermissionDeniedError as err:
            assert err.response.json()["error"]["code"] == "insufficient_quota"
            return None
        answer = raw.parse()
        assert answer.usage is not None
        finish = answer.choices[0].finish_reason
        return bound_of(raw.headers), answer.usage.completion_tokens, finish

    try:
        results = await asyncio.gather(*(one(i) for i in range(200)))
        served = [r for r in results if r is not None]
        assert served, "at least the first requests fit the quota"
        await wait_for_rows(pg, token.id, len(served), within=60)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    # The bound each answer names is what the simulator was sent, and what it kept to.
    sent = sorted(c["body"].get("max_completion_tokens", 0) for c in sim_app.state.calls)
    assert sent == sorted(bound for bound, _, _ in served)
    for bound, completion, finish in served:
        assert completion <= (bound or 16_384)  # gpt-4o-mini's own limit
        if finish == "length":
            assert completion == bound
    assert any(finish == "length" for _, _, finish in served), "some answers were bounded"
    rows = await pg.fetch(
        "SELECT quota, reserved_quota FROM logs WHERE token_id = $1 AND type = 2", token.id
    )
    assert len(rows) == len(served)
    assert all(0 < r["quota"] <= r["reserved_quota"] for r in rows), "charge within reservation"
    total = sum(r["quota"] for r in rows)
    remain = await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id)
    assert remain == quota - total >= 0
    assert min(low) >= 0, f"a balance went below zero: {low}"


async def test_quota_for_exactly_100_requests_serves_exactly_100(
    stack: Stack, pg: asyncpg.Pool, sim_app: Starlette, channel_id: int
) -> None:
    probe = await new_key(pg)
    await sdk(stack, probe.key).chat.completions.create(model=MODEL, messages=HI)
    await wait_for_rows(pg, probe.id, 1)
    assert await pg.fetchval("SELECT quota FROM logs WHERE token_id = $1", probe.id) == 2

    # One after another, no max_tokens: each request may reserve all that is left (its bound
    # is what that covers), and gives back the rest the moment it ends.
    token = await new_key(pg, remain_quota=200)
    client = sdk(stack, token.key)
    served = 0
    while True:
        try:
            raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=HI)
        except openai.PermissionDeniedError as err:
            assert err.response.json()["error"]["code"] == "insufficient_quota"
            break
        assert raw.parse().choices[0].finish_reason == "stop"
        served += 1
        assert served <= 100
    assert served == 100
    await wait_for_rows(pg, token.id, 100)
    assert await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id) == 0
    assert await pg.fetchval("SELECT sum(quota) FROM logs WHERE token_id = $1", token.id) == 200

    # 200 at once, each asking max_tokens=2: reservations are the real cost, so exactly 100
    # fit, however they interleave.
    token = await new_key(pg, remain_quota=200)
    client = burst_sdk(stack, token.key)

    async def one() -> bool:
        try:
            await client.chat.completions.create(model=MODEL, messages=HI, max_tokens=2)
            return True
        except openai.PermissionDeniedError:
            return False

    assert sum(await asyncio.gather(*(one() for _ in range(200)))) == 100
    await wait_for_rows(pg, token.id, 100)
    assert await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id) == 0
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model=MODEL, messages=HI, max_tokens=2)


async def test_affordable_max_tokens_is_untouched_and_unaffordable_is_refused(
    stack: Stack, pg: asyncpg.Pool, sim_app: Starlette, channel_id: int
) -> None:
    token = await new_key(pg, remain_quota=1_000)
    client = sdk(stack, token.key)
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HI, max_tokens=5
    )
    assert HEADER not in raw.headers
    assert sim_app.state.calls[-1]["body"]["max_tokens"] == 5
    # A prompt that costs more than the whole balance never reaches the provider.
    calls = len(sim_app.state.calls)
    poor = await new_key(pg, remain_quota=3)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await sdk(stack, poor.key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 200}]
        )
    assert info.value.response.json()["error"]["code"] == "insufficient_quota"
    assert len(sim_app.state.calls) == calls


HAIKU = "claude-haiku-4-5-20251001"  # routed by this module only


@pytest.fixture
def claude() -> Iterator[Claude]:
    yield from running(Claude())


async def test_reservation_prices_prompt_cache_writes(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    await create_mapped_channel(
        pg,
        secret_key,
        type=14,
        name="claude",
        key=CLAUDE_KEY,
        base_url=claude.url,
        models={HAIKU: SONNET},
    )
    token = await new_key(pg, remain_quota=10**6)
    sdk_client = anthropic.AsyncAnthropic(
        base_url=stack.gateway_url, api_key=token.key, max_retries=0, timeout=60
    )
    price = price_for(HAIKU)
    for n, ttl in enumerate(("5m", "1h"), 1):
        control = {"type": "ephemeral", "ttl": ttl}
        text = f"{ttl} handbook. " * 600
        system: Any = [{"type": "text", "text": text, "cache_control": control}]
        request: dict[str, Any] = {
            "model": HAIKU,
            "max_tokens": 50,
            "system": system,
            "messages": [{"role": "user", "content": "question"}],
        }
        answer = await sdk_client.messages.create(**request)
        assert answer.usage.cache_creation_input_tokens
        await wait_for_rows(pg, token.id, n)
        row = await pg.fetchrow(
            "SELECT quota, reserved_quota, cache_write_tokens FROM logs WHERE token_id = $1"
            " ORDER BY id DESC LIMIT 1",
            token.id,
        )
        # The reservation priced the whole prompt as a cache write of the lifetime asked for
        # (Claude: 1.25x or 2x the input price), so the written prompt settles within it.
        counted = prompt_tokens("messages", orjson.dumps(request), HAIKU)
        assert counted is not None
        ratio = prompt_ratio(price, long_cache_writes=ttl == "1h")
        assert ratio == (2.0 if ttl == "1h" else 1.25)
        assert row["reserved_quota"] == worst_cost(price, counted, 50, ratio)
        assert row["cache_write_tokens"] > 0
        assert 0 < row["quota"] <= row["reserved_quota"]
        # Priced as plain input, the reservation would have been below this charge.
        assert worst_cost(price, counted, 50, 1.0) < row["quota"]


@pytest.fixture
def tencent() -> Iterator[Tencent]:
    yield from running(Tencent())


async def test_stream_of_a_provider_without_a_limit_field_is_cut_at_the_bound(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    # Hunyuan's API has no output limit: only the relay's stream cut keeps it to the bound.
    model = alias("bounded-hy")
    await hunyuan_channel(pg, secret_key, tencent, {model: "hunyuan-lite"})
    messages: Any = [{"role": "user", "content": "alpha beta gamma delta " * 200}]
    body = orjson.dumps({"model": model, "messages": messages, "stream": True})
    counted = prompt_tokens("chat.completions", body, model)
    assert counted is not None
    # An unknown model is priced at ratio 1 for input and output: 100 output tokens left.
    token = await new_key(pg, remain_quota=counted + 100)
    stream = await sdk(stack, token.key).chat.completions.with_raw_response.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert stream.headers[HEADER] == "100"
    chunks = [chunk async for chunk in stream.parse()]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and "stop" not in finishes
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens <= 100
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Echo: alpha beta") and len(text) < len(messages[0]["content"])
    await wait_for_rows(pg, token.id, 1)
    row = await pg.fetchrow(
        "SELECT quota, reserved_quota, completion_tokens, estimated FROM logs WHERE token_id = $1",
        token.id,
    )
    assert row["estimated"] and row["completion_tokens"] == usage.completion_tokens
    assert 0 < row["quota"] <= row["reserved_quota"] == counted + 100
    assert await pg.fetchval("SELECT remain_quota FROM tokens WHERE id = $1", token.id) >= 0
    # The same through the Messages API (Anthropic's framing, translated for Hunyuan).
    request: dict[str, Any] = {"model": model, "max_tokens": 4000, "messages": messages}
    counted = prompt_tokens("messages", orjson.dumps(request), model)
    assert counted is not None
    token = await new_key(pg, remain_quota=counted + 100)
    claude_sdk = anthropic.AsyncAnthropic(
        base_url=stack.gateway_url, api_key=token.key, max_retries=0, timeout=60
    )
    async with claude_sdk.messages.stream(**request) as events:
        final = await events.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens <= 100
    await wait_for_rows(pg, token.id, 1)
    row = await pg.fetchrow(
        "SELECT quota, reserved_quota, estimated FROM logs WHERE token_id = $1", token.id
    )
    assert row["estimated"] and 0 < row["quota"] <= row["reserved_quota"] == counted + 100
