"""Alibaba DashScope's native protocol (type 17 with config ``{"protocol": "native"}``)
through the gateway with the openai SDK, against the strict DashScope simulator
(``unigate_sim.dashscope``); plain type 17 stays on the OpenAI-compatible mode."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    WEATHER_TOOL,
    Simulator,
    alias,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_rows,
    running,
)
from unigate_sim.dashscope import create_dashscope_app
from unigate_sim.echo_reply import prompt_tokens
from unigate_sim.openai import count_tokens

KEY = "sk-ds-" + "d" * 32
HELLO: Any = [{"role": "user", "content": "hello"}]


class DashScope(Simulator):
    def __init__(self) -> None:
        super().__init__(create_dashscope_app({KEY}))


@pytest.fixture
def dashscope() -> Iterator[DashScope]:
    yield from running(DashScope())


async def channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: DashScope,
    models: dict[str, str],
    key: str = KEY,
    config: dict[str, object] | None = None,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=17,
        name="dashscope",
        key=key,
        base_url=sim.url,
        models=models,
        config={"protocol": "native"} if config is None else config,
    )


async def test_native_chat_and_stream_with_exact_usage(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    dashscope: DashScope,
) -> None:
    model = alias("qwen")
    await channel(pg, secret_key, dashscope, {model: "qwen-plus"})
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello qwen"},
    ]
    answer = await client.chat.completions.create(model=model, messages=messages, max_tokens=30)
    assert answer.choices[0].message.content == "Echo: hello qwen"
    call = dashscope.state.calls[-1]
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert "x-dashscope-sse" not in call["headers"]
    assert call["body"]["model"] == "qwen-plus"
    assert call["body"]["input"]["messages"][0] == {"role": "system", "content": "You are terse."}
    assert call["body"]["parameters"] == {"result_format": "message", "max_tokens": 30}
    expected_prompt = prompt_tokens([("system", "You are terse."), ("user", "hello qwen")])
    assert answer.usage is not None and answer.usage.prompt_tokens == expected_prompt
    assert answer.usage.completion_tokens == count_tokens("Echo: hello qwen")

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    call = dashscope.state.calls[-1]
    assert call["headers"]["x-dashscope-sse"] == "enable"
    assert call["body"]["parameters"]["incremental_output"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello qwen"
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
    for row in await ledger_rows(pg, tenant, 2):
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (
            expected_prompt,
            answer.usage.completion_tokens,
            False,
        )
        assert row["upstream_model"] == "qwen-plus"


async def test_tool_call_round_trip(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, dashscope: DashScope
) -> None:
    model = alias("qwen-fc")
    await channel(pg, secret_key, dashscope, {model: "qwen-max"})
    ask: Any = [{"role": "user", "content": "What is the weather in Hangzhou?"}]
    first = await client.chat.completions.create(model=model, messages=ask, tools=[WEATHER_TOOL])
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert calls is not None and calls[0].function.arguments == '{"city":"Hangzhou"}'
    follow: Any = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "rainy"},
    ]
    second = await client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "Echo: rainy"
    assert dashscope.state.calls[-1]["body"]["input"]["messages"][2]["tool_call_id"] == calls[0].id
    stream = await client.chat.completions.create(
        model=model, messages=ask, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"


async def test_errors_and_invalid_key(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    dashscope: DashScope,
) -> None:
    model = alias("qwen-err")
    await channel(pg, secret_key, dashscope, {model: "qwen-nonexistent"})
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model, messages=HELLO)
    assert "Model not exist" in refused.value.message
    limited = alias("qwen-429")
    await channel(pg, secret_key, dashscope, {limited: "qwen-turbo"})
    dashscope.state.fail_next.append((429, "Throttling.RateQuota", "Requests rate limit exceeded."))
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=limited, messages=HELLO, stream=True)
    rows = await ledger_rows(pg, tenant, 2)
    assert sorted(r["status_code"] for r in rows) == [400, 429]  # any arrival order

    wrong = alias("qwen-bad")
    bad_key = "sk-ds-" + secrets.token_hex(12)
    channel_id = await channel(pg, secret_key, dashscope, {wrong: "qwen-turbo"}, key=bad_key)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=wrong, messages=HELLO)
    assert_upstream_auth_failed(failed.value, bad_key)
    assert "upstream_auth_failed" in await eventually_disabled(pg, channel_id)


async def test_plain_type_17_stays_on_the_compatible_mode(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, dashscope: DashScope
) -> None:
    model = alias("qwen-compat")
    await channel(pg, secret_key, dashscope, {model: "qwen-plus"}, config={})
    # The OpenAI family posts to /compatible-mode/v1/..., which the native simulator does not
    # serve: the native endpoint is never called.
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model=model, messages=HELLO)
    assert dashscope.state.calls == []
