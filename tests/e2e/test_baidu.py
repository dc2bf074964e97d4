"""Baidu ERNIE channels (type 15) through the gateway with the openai SDK, against the strict
Qianfan simulator (``unigate_sim.baidu``): the access-token exchange and its reuse, per-model
endpoints, ``system`` at the top level, strict turns, functions, the stream format, and
errors that arrive as ``error_code`` in HTTP 200 bodies."""

from __future__ import annotations

import secrets
import time
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
from unigate_sim.baidu import create_baidu_app
from unigate_sim.echo_reply import prompt_tokens
from unigate_sim.openai import count_tokens

BAIDU = 15
API_KEY = "bce-ak-" + "a" * 24
SECRET_KEY = "bce-sk-" + "s" * 32


class Qianfan(Simulator):
    def __init__(self) -> None:
        super().__init__(create_baidu_app({API_KEY: SECRET_KEY}))

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [c for c in self.state.calls if c["kind"] == "chat"]


@pytest.fixture
def qianfan() -> Iterator[Qianfan]:
    yield from running(Qianfan())


async def channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Qianfan,
    models: dict[str, str],
    key: str = f"{API_KEY}|{SECRET_KEY}",
) -> int:
    return await create_mapped_channel(
        pg, secret_key, type=BAIDU, name="baidu", key=key, base_url=sim.url, models=models
    )


async def test_chat_stream_system_prompt_and_one_token_exchange(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("ernie")
    await channel(pg, secret_key, qianfan, {model: "ERNIE-3.5-8K"})
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello"},
        {"role": "user", "content": "ernie world"},
    ]
    answer = await client.chat.completions.create(model=model, messages=messages, max_tokens=50)
    assert answer.choices[0].message.content == "Echo: hello\n\nernie world"
    assert answer.choices[0].finish_reason == "stop"
    call = qianfan.chats[-1]
    assert call["endpoint"] == "completions"
    # The system prompt is ERNIE's top-level field; consecutive user turns became one.
    assert call["body"]["system"] == "You are terse."
    assert call["body"]["messages"] == [{"role": "user", "content": "hello\n\nernie world"}]
    assert call["body"]["max_output_tokens"] == 50
    expected_prompt = prompt_tokens(
        [("system", "You are terse."), ("user", "hello\n\nernie world")]
    )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == expected_prompt
    assert answer.usage.completion_tokens == count_tokens("Echo: hello\n\nernie world")

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello\n\nernie world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert qianfan.chats[-1]["body"]["stream"] is True

    plain = await client.chat.completions.create(model=model, messages=messages, stream=True)
    assert all(c.usage is None for c in [c async for c in plain])

    # Three calls, one token exchange: the token is cached and reused.
    assert len(qianfan.state.token_calls) == 1
    assert {c["query"]["access_token"] for c in qianfan.chats} == set(qianfan.state.tokens)
    ledger = await ledger_rows(pg, tenant, 3)
    for row in ledger:
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (
            expected_prompt,
            answer.usage.completion_tokens,
            False,
        )
    assert sorted(r["is_stream"] for r in ledger) == [False, True, True]


async def test_function_call_round_trip(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("ernie-fc")
    await channel(pg, secret_key, qianfan, {model: "ERNIE-4.0-8K"})
    ask: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = await client.chat.completions.create(model=model, messages=ask, tools=[WEATHER_TOOL])
    assert qianfan.chats[-1]["endpoint"] == "completions_pro"
    assert qianfan.chats[-1]["body"]["functions"][0]["name"] == "get_weather"
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == '{"city":"Paris"}'
    follow: Any = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"},
    ]
    second = await client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "Echo: sunny, 21 C"
    sent = qianfan.chats[-1]["body"]["messages"]
    assert sent[1]["function_call"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert sent[2] == {"role": "function", "name": "get_weather", "content": "sunny, 21 C"}

    stream = await client.chat.completions.create(
        model=model, messages=ask, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_provider_errors_become_openai_errors(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("ernie-err")
    await channel(pg, secret_key, qianfan, {model: "ERNIE-Speed-128K"})
    # An even number of turns (ending with the assistant): Qianfan's 336003, the client's 400.
    bad: Any = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model, messages=bad)
    assert "odd number" in refused.value.message
    assert qianfan.chats[-1]["endpoint"] == "ernie-speed-128k"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=model, messages=bad, stream=True)

    # The QPS limit (error_code 18 in a 200 body) is a 429 after the one channel is tried.
    qianfan.state.fail_next.append((18, "Open api qps request limit reached"))
    hello: Any = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model=model, messages=hello)
    assert "qps" in limited.value.message
    ledger = await ledger_rows(pg, tenant, 3)
    assert sorted(r["status_code"] for r in ledger) == [400, 400, 429]  # any arrival order
    assert all(r["quota"] == 0 for r in ledger)


async def test_expired_token_is_exchanged_again(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("ernie-exp")
    await channel(pg, secret_key, qianfan, {model: "ERNIE-3.5-8K"})
    hello: Any = [{"role": "user", "content": "hello"}]
    await client.chat.completions.create(model=model, messages=hello)
    # Baidu expires the token early: the next call is refused with 111, the relay exchanges a
    # new token and the client never notices.
    for token in qianfan.state.tokens:
        qianfan.state.tokens[token] = time.time() - 1
    again = await client.chat.completions.create(model=model, messages=hello)
    assert again.choices[0].message.content == "Echo: hello"
    assert len(qianfan.state.token_calls) == 2
    used = [c["query"]["access_token"] for c in qianfan.chats]
    assert len(used) == 3 and used[0] == used[1] != used[2]
    for token in qianfan.state.tokens:
        qianfan.state.tokens[token] = time.time() - 1
    streamed = await client.chat.completions.create(model=model, messages=hello, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices]) == (
        "Echo: hello"
    )
    assert len(qianfan.state.token_calls) == 3


async def test_wrong_secret_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("ernie-bad")
    wrong = "bce-sk-" + secrets.token_hex(16)
    channel_id = await channel(
        pg, secret_key, qianfan, {model: "ERNIE-3.5-8K"}, key=f"{API_KEY}|{wrong}"
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    assert_upstream_auth_failed(failed.value, wrong)
    assert qianfan.state.token_calls[-1]["client_secret"] == wrong
    assert qianfan.chats == []
    assert "upstream_auth_failed" in await eventually_disabled(pg, channel_id)


async def test_embeddings(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, qianfan: Qianfan
) -> None:
    model = alias("baidu-emb")
    await channel(pg, secret_key, qianfan, {model: "Embedding-V1"})
    result = await client.embeddings.create(model=model, input=["hello", "ernie world"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 384
    assert qianfan.state.calls[-1]["endpoint"] == "embedding-v1"
    tokens = count_tokens("hello") + count_tokens("ernie world")
    assert result.usage.prompt_tokens == tokens
    (row,) = await ledger_rows(pg, tenant, 1)
    assert row["prompt_tokens"] == tokens and not row["estimated"]
