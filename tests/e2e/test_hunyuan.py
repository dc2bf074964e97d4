"""Tencent Hunyuan channels (type 23) through the gateway with the openai SDK, against the
strict Hunyuan simulator (``unigate_sim.hunyuan``), which recomputes every request's
TC3-HMAC-SHA256 signature: PascalCase bodies, the system message first, tools with their
schema as a JSON string, the stream format, and API 3.0 errors in HTTP 200 bodies."""

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
from unigate_sim.echo_reply import prompt_tokens
from unigate_sim.hunyuan import create_hunyuan_app
from unigate_sim.openai import count_tokens

HUNYUAN = 23
SECRET_ID = "AKID" + "x" * 32
SECRET_KEY = "hy-" + "k" * 29
HELLO: Any = [{"role": "user", "content": "hello"}]


class Tencent(Simulator):
    def __init__(self) -> None:
        super().__init__(create_hunyuan_app({SECRET_ID: SECRET_KEY}))


@pytest.fixture
def tencent() -> Iterator[Tencent]:
    yield from running(Tencent())


async def channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Tencent,
    models: dict[str, str],
    key: str = f"{SECRET_ID}|{SECRET_KEY}",
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=HUNYUAN,
        name="hunyuan",
        key=key,
        base_url=sim.url,
        models=models,
        config={"region": "ap-guangzhou"},
    )


async def test_signed_chat_and_stream_with_exact_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    model = alias("hy")
    # One API's AppId|SecretId|SecretKey layout works as well.
    await channel(
        pg, secret_key, tencent, {model: "hunyuan-lite"}, key=f"1250000000|{SECRET_ID}|{SECRET_KEY}"
    )
    messages: Any = [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hunyuan world"},
    ]
    answer = await client.chat.completions.create(model=model, messages=messages, temperature=0.5)
    assert answer.choices[0].message.content == "Echo: hello\n\nhunyuan world"
    call = tencent.state.calls[-1]
    assert call["headers"]["x-tc-action"] == "ChatCompletions"
    assert call["headers"]["x-tc-region"] == "ap-guangzhou"
    assert call["body"]["Model"] == "hunyuan-lite" and call["body"]["Temperature"] == 0.5
    # The system message goes first, whatever its place in the OpenAI request.
    assert call["body"]["Messages"] == [
        {"Role": "system", "Content": "You are terse."},
        {"Role": "user", "Content": "hello\n\nhunyuan world"},
    ]
    expected_prompt = prompt_tokens(
        [("system", "You are terse."), ("user", "hello\n\nhunyuan world")]
    )
    assert answer.usage is not None and answer.usage.prompt_tokens == expected_prompt
    assert answer.usage.completion_tokens == count_tokens(answer.choices[0].message.content or "")

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert tencent.state.calls[-1]["body"]["Stream"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello\n\nhunyuan world"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == expected_prompt
    ledger = await ledger_rows(pg, tenant, 2)
    for row in ledger:
        assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (
            expected_prompt,
            answer.usage.completion_tokens,
            False,
        )


async def test_tool_call_round_trip(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    model = alias("hy-fc")
    await channel(pg, secret_key, tencent, {model: "hunyuan-functioncall"})
    ask: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = await client.chat.completions.create(model=model, messages=ask, tools=[WEATHER_TOOL])
    tool = tencent.state.calls[-1]["body"]["Tools"][0]
    assert tool["Type"] == "function" and tool["Function"]["Name"] == "get_weather"
    assert isinstance(tool["Function"]["Parameters"], str)
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.arguments == '{"city":"Paris"}'
    follow: Any = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"},
    ]
    second = await client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "Echo: sunny, 21 C"
    sent = tencent.state.calls[-1]["body"]["Messages"]
    assert sent[1]["ToolCalls"][0]["Id"] == calls[0].id
    assert sent[2] == {"Role": "tool", "Content": "sunny, 21 C", "ToolCallId": calls[0].id}

    stream = await client.chat.completions.create(
        model=model, messages=ask, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_provider_errors_become_openai_errors(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    model = alias("hy-err")
    await channel(pg, secret_key, tencent, {model: "hunyuan-lite"})
    # Ending with the assistant breaks Hunyuan's turn rule: InvalidParameter, the client's 400.
    bad: Any = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model, messages=bad)
    assert refused.value.response.json()["error"]["code"] == "InvalidParameter"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=model, messages=bad, stream=True)
    tencent.state.fail_next.append(("RequestLimitExceeded", "Your request rate is limited."))
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=model, messages=HELLO)
    ledger = await ledger_rows(pg, tenant, 3)
    # Rows of quick successive calls may reach the ledger in either order.
    assert sorted(r["status_code"] for r in ledger) == [400, 400, 429]


@pytest.mark.parametrize("wrong", ["secret_key", "secret_id"])
async def test_wrong_credentials_disable_the_channel(
    wrong: str, client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    model = alias("hy-bad")
    bad = "bad-" + secrets.token_hex(12)
    key = f"{SECRET_ID}|{bad}" if wrong == "secret_key" else f"{bad}|{SECRET_KEY}"
    channel_id = await channel(pg, secret_key, tencent, {model: "hunyuan-lite"}, key=key)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=model, messages=HELLO)
    assert_upstream_auth_failed(failed.value, bad)
    assert tencent.state.calls == []  # refused at the signature check
    assert "upstream_auth_failed" in await eventually_disabled(pg, channel_id)
