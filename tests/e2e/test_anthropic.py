"""Anthropic through the gateway, against the strict Anthropic simulator
(``unigate_sim.anthropic``) and the OpenAI one:

* the ``openai`` SDK against an Anthropic channel (type 14): chat and streams with the system
  prompt in ``system``, tools (parallel calls in a stream), images, prompt caching, usage in
  the ledger equal to the simulator's, provider errors, a refused key disabling the channel;
* the ``anthropic`` SDK against the gateway's ``/v1/messages``: natively on an Anthropic
  channel and translated on an OpenAI channel, ``count_tokens`` (never billed), and
  Anthropic-shaped errors of the gateway and of providers;
* prompt-cache reads and writes billed at Claude's prices to the unit (reads 0.1x the input
  price, 5-minute writes 1.25x, 1-hour writes 2x), streamed or not.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import orjson
import pytest
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import (
    Simulator,
    alias,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
    ledger_rows,
    running,
)
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate.pricing import QUOTA_PER_USD
from unigate_cli.devstack import Stack
from unigate_sim.anthropic import StreamError, create_anthropic_app
from unigate_sim.openai import count_tokens

ANTHROPIC = 14
CLAUDE_KEY = "sk-ant-api03-" + "s" * 40
SONNET = "claude-sonnet-4-20250514"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


class Claude(Simulator):
    """The Anthropic simulator on its own port."""

    def __init__(self) -> None:
        super().__init__(create_anthropic_app({CLAUDE_KEY}))

    @property
    def app(self) -> Starlette:
        app: Starlette = self.server.server.config.app
        return app


@pytest.fixture
def claude() -> Iterator[Claude]:
    yield from running(Claude())


async def claude_channel(
    pg: asyncpg.Pool, secret_key: str, sim: Claude, model: str, key: str = CLAUDE_KEY
) -> int:
    """A type-14 channel on ``sim`` serving ``model`` as Claude Sonnet 4."""
    return await create_mapped_channel(
        pg,
        secret_key,
        type=ANTHROPIC,
        name="claude",
        key=key,
        base_url=sim.url,
        models={model: SONNET},
    )


async def openai_channel(pg: asyncpg.Pool, secret_key: str, sim: ThreadedServer, model: str) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=1,
        name="openai",
        key=SIM_KEY,
        base_url=sim.url,
        models={model: "gpt-4o-mini"},
    )


def ledger_usage(record: asyncpg.Record) -> tuple[int, int, int, int, bool]:
    return (
        record["prompt_tokens"],
        record["completion_tokens"],
        record["cached_tokens"],
        record["cache_write_tokens"],
        record["estimated"],
    )


def simulator_usage(usage: dict[str, Any]) -> tuple[int, int, int, int, bool]:
    """The ledger's view of Anthropic's usage: input + cache reads + cache writes."""
    prompt = (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )
    return (
        prompt,
        usage["output_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
        False,
    )


def sonnet_quota(
    *, input: int, output: int, read: int = 0, write_5m: int = 0, write_1h: int = 0
) -> int:
    """What Anthropic charges for these tokens of a Claude Sonnet (4, 3.7 and 3.5: 3 USD per 1M
    input, 15 output; cache reads 0.1x input, 5-minute cache writes 1.25x, 1-hour ones 2x),
    in quota units (500,000 = 1 USD), rounded up as the ledger rounds. Exact fractions, so it
    checks the gateway's floating-point arithmetic rather than repeating it."""
    # Tokens times USD per 1M tokens: millionths of a dollar.
    micro_usd = (
        input * 3 + output * 15 + read * Fraction(3, 10) + write_5m * Fraction(15, 4) + write_1h * 6
    )
    return math.ceil(micro_usd * QUOTA_PER_USD / 1_000_000)


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        data = [line[6:] for line in frame.split("\n") if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            out.append(orjson.loads(data[0]))
    return out


@pytest.fixture(scope="module", autouse=True)
async def warm_stack(stack: Stack, pg: asyncpg.Pool, channel_id: int) -> None:
    """One request through every service before the tests: on a loaded machine a cold first
    request can outlast the test stack's reservation timeout, and the sweeper would then
    settle it before its own usage event (by design), hiding the usage these tests check."""
    token = await admin_writes.create_token(pg, user_id=1, name="warm-up", unlimited_quota=True)
    async with httpx.AsyncClient(timeout=60) as warm:
        await warm.post(
            stack.gateway_url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {token.key}"},
        )


@pytest.fixture
def claude_sdk(stack: Stack, tenant: Tenant) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=stack.gateway_url, api_key=tenant.key, max_retries=0, timeout=60
    )


async def test_openai_sdk_chat_and_stream_on_claude(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("claude")
    await claude_channel(pg, secret_key, claude, model)
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello claude"},
    ]
    answer = await client.chat.completions.create(model=model, messages=messages)
    assert answer.choices[0].message.content == "Echo: hello claude"
    assert answer.choices[0].finish_reason == "stop"
    call = claude.calls[-1]
    assert call["path"] == "/v1/messages"
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert call["headers"]["x-api-key"] == CLAUDE_KEY
    sent = call["body"]
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello claude"}]}
    ]
    assert sent["model"] == SONNET and sent["max_tokens"] == 64000
    first = await ledger_row(pg, tenant, 1)
    assert answer.usage is not None
    assert ledger_usage(first) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
        0,
        0,
        False,
    )
    assert first["upstream_model"] == SONNET and first["quota"] > 0

    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=3,
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello"  # three tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert claude.calls[-1]["body"]["stream"] is True
    streamed = await ledger_row(pg, tenant, 2)
    assert ledger_usage(streamed) == (usage.prompt_tokens, 3, 0, 0, False)
    assert streamed["is_stream"]

    # A cache breakpoint on a long prompt part: written once, then read (cached tokens). The
    # client asks for Claude by its own name here, so Claude's prices apply (only this test
    # routes that name).
    model = SONNET
    await claude_channel(pg, secret_key, claude, model)
    long_text = "Background facts to remember. " * 300
    cached: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": long_text, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "question"},
            ],
        }
    ]
    await client.chat.completions.create(model=model, messages=cached)
    written = claude.calls[-1]
    # Each row is awaited before the next call: rows of calls in flight together may reach
    # the ledger in either order.
    third = await ledger_row(pg, tenant, 3)
    again = await client.chat.completions.create(model=model, messages=cached)
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    read = again.usage.prompt_tokens_details.cached_tokens
    assert read == count_tokens(long_text) + 3
    assert written["body"]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    fourth = await ledger_row(pg, tenant, 4)
    assert third["cached_tokens"] == 0 and fourth["cached_tokens"] == read
    assert third["cache_write_tokens"] == read and fourth["cache_write_tokens"] == 0
    assert third["prompt_tokens"] == fourth["prompt_tokens"]
    # Priced as Claude Sonnet 4: the cache write at 1.25x the input price, the read at 0.1x.
    rest = third["prompt_tokens"] - read
    assert third["quota"] == sonnet_quota(
        input=rest, output=third["completion_tokens"], write_5m=read
    )
    assert fourth["quota"] == sonnet_quota(
        input=rest, output=fourth["completion_tokens"], read=read
    )
    assert fourth["quota"] < third["quota"] and fourth["cached_ratio"] == pytest.approx(0.1)


async def test_openai_sdk_tools_images_and_parallel_stream_on_claude(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("claude-tools")
    await claude_channel(pg, secret_key, claude, model)
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = await client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    await wait_for_rows(pg, tenant.token_id, 1)  # rows in call order (see above)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    tool_call = choice.message.tool_calls[0]
    assert tool_call.type == "function"
    assert tool_call.function.name == "get_weather"
    assert set(orjson.loads(tool_call.function.arguments)) == {"city"}
    assert claude.calls[-1]["body"]["tools"][0]["input_schema"]["required"] == ["city"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    answered = await client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    await wait_for_rows(pg, tenant.token_id, 2)
    assert answered.choices[0].message.content == "Echo: sunny, 21 C"
    turns = claude.calls[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0]["type"] == "tool_use"
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": tool_call.id, "content": "sunny, 21 C"}
    ]

    # Two tools called in one streamed turn keep their own indices, ids and arguments.
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "use all tools"}],
        tools=[WEATHER, TIME],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = calls.setdefault(delta_call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta_call.id or ""
            if delta_call.function is not None:
                entry["name"] += delta_call.function.name or ""
                entry["arguments"] += delta_call.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls.values()}) == 2
    assert orjson.loads(calls[1]["arguments"]) == {}
    await wait_for_rows(pg, tenant.token_id, 3)

    image: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in these pictures"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    seen = await client.chat.completions.create(model=model, messages=image)
    assert seen.choices[0].message.content == "Echo: what is in these pictures"
    blocks = claude.calls[-1]["body"]["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.png"},
    }
    logged = await ledger_row(pg, tenant, 4)
    assert seen.usage is not None and logged["prompt_tokens"] == seen.usage.prompt_tokens


async def test_provider_errors_and_refused_key_on_claude(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("claude-errors")
    await claude_channel(pg, secret_key, claude, model)
    hello: list[Any] = [{"role": "user", "content": "hello"}]
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    claude.app.state.fail_next.append((529, overloaded))
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=model, messages=hello)
    assert failed.value.status_code == 503
    assert failed.value.response.json()["error"]["type"] == "overloaded_error"
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
    claude.app.state.fail_next.append((429, limited))
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=model, messages=hello)
    # Claude's own validation (max_tokens above the model's limit) is the client's 400.
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=model, messages=hello, max_tokens=100_000)
    assert (
        "maximum allowed number of output tokens"
        in refused.value.response.json()["error"]["message"]
    )
    # Cut off mid-stream by an error event: the client gets an error event, the ledger a row.
    claude.app.state.stream_errors.append(StreamError(after=4))
    async with httpx.AsyncClient(timeout=30) as raw:
        response = await raw.post(
            str(client.base_url) + "chat/completions",
            json={"model": model, "messages": hello, "stream": True},
            headers={"Authorization": f"Bearer {tenant.key}"},
        )
    events = sse_events(response.content)
    assert events[-1]["error"]["type"] == "overloaded_error"
    await ledger_row(pg, tenant, 4)

    # The provider refusing the channel's key: 502 for the client, channel auto-disabled.
    broken_model = alias("claude-bad-key")
    broken = await claude_channel(pg, secret_key, claude, broken_model, key="sk-ant-revoked-0000")
    with pytest.raises(openai.APIStatusError) as bad_key:
        await client.chat.completions.create(model=broken_model, messages=hello)
    assert_upstream_auth_failed(bad_key.value)
    assert "sk-ant-revoked-0000" not in await eventually_disabled(pg, broken)


async def test_anthropic_sdk_on_claude_channel_natively(
    claude_sdk: anthropic.AsyncAnthropic,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    claude: Claude,
) -> None:
    # Claude 3.7 Sonnet by its own name, so Claude's prices apply (3/15 USD, as Sonnet 4; only
    # this test routes that name); the channel maps it to Sonnet 4.
    model = "claude-3-7-sonnet-20250219"
    await claude_channel(pg, secret_key, claude, model)
    handbook = "Shared handbook text. " * 400
    system: Any = [{"type": "text", "text": handbook, "cache_control": {"type": "ephemeral"}}]
    messages: Any = [{"role": "user", "content": "hello native"}]
    first = await claude_sdk.messages.create(
        model=model, max_tokens=100, system=system, messages=messages
    )
    assert [b.type for b in first.content] == ["text"]
    assert first.content[0].text == "Echo: hello native"  # type: ignore[union-attr]
    sent = claude.calls[-1]["body"]
    assert sent["model"] == SONNET and sent["system"] == system and sent["messages"] == messages
    second = await claude_sdk.messages.create(
        model=model, max_tokens=100, system=system, messages=messages
    )
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    rows = [await ledger_row(pg, tenant, 1), await ledger_row(pg, tenant, 2)]
    assert [ledger_usage(r) for r in rows] == [
        simulator_usage(first.usage.model_dump()),
        simulator_usage(second.usage.model_dump()),
    ]
    assert rows[0]["endpoint"] == "messages"
    # The handbook is written once (a 5-minute entry: 1.25x the input price), then read (0.1x).
    cached = count_tokens(handbook)
    assert (rows[0]["cache_write_tokens"], rows[1]["cached_tokens"]) == (cached, cached)
    assert [r["quota"] for r in rows] == [
        sonnet_quota(
            input=first.usage.input_tokens, output=first.usage.output_tokens, write_5m=cached
        ),
        sonnet_quota(
            input=second.usage.input_tokens, output=second.usage.output_tokens, read=cached
        ),
    ]

    # Streamed with tools and an image: Anthropic's SSE passes through as sent.
    tools: Any = [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "weather here?"},
    ]
    async with claude_sdk.messages.stream(
        model=model, max_tokens=200, tools=tools, messages=[{"role": "user", "content": content}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool_use = final.content[0]
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather"
    streamed = await ledger_row(pg, tenant, 3)
    assert ledger_usage(streamed) == simulator_usage(final.usage.model_dump())
    assert streamed["is_stream"]

    async with claude_sdk.messages.stream(
        model=model, max_tokens=200, messages=messages
    ) as text_stream:
        text = "".join([t async for t in text_stream.text_stream])
    assert text == "Echo: hello native"

    counted = await claude_sdk.messages.count_tokens(model=model, messages=messages, system=system)
    assert claude.calls[-1]["path"] == "/v1/messages/count_tokens"
    assert counted.input_tokens == simulator_usage(first.usage.model_dump())[0]
    # The text stream's row is written when the relay's final message (usage) arrives, which
    # may be after the SDK saw [DONE] and sent count_tokens: rows 4 and 5 come in either order.
    free = [r for r in (await ledger_rows(pg, tenant, 5))[3:] if r["endpoint"] != "messages"]
    assert [r["endpoint"] for r in free] == ["messages.count_tokens"]
    assert (free[0]["prompt_tokens"], free[0]["completion_tokens"], free[0]["quota"]) == (0, 0, 0)


async def test_cache_writes_are_billed_by_lifetime(
    claude_sdk: anthropic.AsyncAnthropic,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    claude: Claude,
) -> None:
    # Claude 3.5 Sonnet by its own name (3/15 USD, as Sonnet 4; only this test routes it).
    model = "claude-3-5-sonnet-20240620"
    await claude_channel(pg, secret_key, claude, model)
    handbook = "Stable handbook text. " * 400
    system: Any = [
        {"type": "text", "text": handbook, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]

    def conversation(history: str) -> Any:
        content = [
            {"type": "text", "text": history, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "question"},
        ]
        return [{"role": "user", "content": content}]

    history = "What we said so far. " * 300
    hour = count_tokens(handbook)  # the 1-hour entry: the handbook
    five = 3 + count_tokens(history)  # the 5-minute one beyond it: the turn so far
    # Streamed, nothing cached yet: the handbook is written for an hour (2x the input price),
    # the conversation for 5 minutes (1.25x). Anthropic says which is which in message_start.
    async with claude_sdk.messages.stream(
        model=model, max_tokens=100, system=system, messages=conversation(history)
    ) as stream:
        written = (await stream.get_final_message()).usage
    assert written.cache_creation is not None
    split = written.cache_creation
    assert (split.ephemeral_1h_input_tokens, split.ephemeral_5m_input_tokens) == (hour, five)
    first = await ledger_row(pg, tenant, 1)
    assert first["is_stream"] and (first["cached_tokens"], first["cache_write_tokens"]) == (
        0,
        hour + five,
    )
    assert first["quota"] == sonnet_quota(
        input=written.input_tokens, output=written.output_tokens, write_5m=five, write_1h=hour
    )

    # The same prompt again: all of it read, at 0.1x whatever the entries' lifetimes.
    again = (
        await claude_sdk.messages.create(
            model=model, max_tokens=100, system=system, messages=conversation(history)
        )
    ).usage
    second = await ledger_row(pg, tenant, 2)
    assert (second["cached_tokens"], second["cache_write_tokens"]) == (hour + five, 0)
    assert second["quota"] == sonnet_quota(
        input=again.input_tokens, output=again.output_tokens, read=hour + five
    )

    # Another conversation under the same handbook: the 1-hour entry read, the rest written
    # for 5 minutes.
    other = "Another conversation entirely. " * 300
    fresh = (
        await claude_sdk.messages.create(
            model=model, max_tokens=100, system=system, messages=conversation(other)
        )
    ).usage
    third = await ledger_row(pg, tenant, 3)
    written_5m = 3 + count_tokens(other)
    assert (third["cached_tokens"], third["cache_write_tokens"]) == (hour, written_5m)
    assert third["quota"] == sonnet_quota(
        input=fresh.input_tokens, output=fresh.output_tokens, read=hour, write_5m=written_5m
    )


async def test_anthropic_sdk_on_openai_channel(
    claude_sdk: anthropic.AsyncAnthropic,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
) -> None:
    model = alias("via-openai")
    await openai_channel(pg, secret_key, simulator, model)
    answer = await claude_sdk.messages.create(
        model=model,
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello from anthropic"}],
    )
    assert answer.content[0].text == "Echo: hello from anthropic"  # type: ignore[union-attr]
    assert answer.model == model and answer.stop_reason == "end_turn"
    sent = sim_app.state.calls[-1]["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello from anthropic"},
    ]
    assert sent["max_tokens"] == 50 and sent["model"] == "gpt-4o-mini"
    first = await ledger_row(pg, tenant, 1)
    assert ledger_usage(first) == simulator_usage(answer.usage.model_dump())
    assert first["prompt_tokens"] > 0 and first["quota"] > 0

    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    sky = {"type": "image", "source": {"type": "url", "url": "https://example.com/sky.png"}}
    ask: Any = [{"role": "user", "content": [sky, {"type": "text", "text": "weather in Oslo?"}]}]
    async with claude_sdk.messages.stream(
        model=model, max_tokens=100, tools=tools, messages=ask
    ) as stream:
        called = await stream.get_final_message()
    assert called.stop_reason == "tool_use"
    tool_use = called.content[0]
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather"
    assert set(tool_use.input) == {"city"}
    assert sim_app.state.calls[-1]["body"]["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/sky.png"}},
        {"type": "text", "text": "weather in Oslo?"},
    ]
    streamed = await ledger_row(pg, tenant, 2)
    assert ledger_usage(streamed) == simulator_usage(called.usage.model_dump())
    assert called.usage.input_tokens > 0

    follow_up: Any = [
        *ask,
        {"role": "assistant", "content": [tool_use.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
        },
    ]
    async with claude_sdk.messages.stream(
        model=model, max_tokens=100, tools=tools, messages=follow_up
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    sent = sim_app.state.calls[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "sunny"}
    assert text == "Echo: sunny"

    counted = await claude_sdk.messages.count_tokens(model=model, messages=ask)
    assert counted.input_tokens > 0
    free = await ledger_row(pg, tenant, 4)
    assert (free["prompt_tokens"], free["quota"]) == (0, 0)


async def test_anthropic_shaped_errors(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("errors")
    await claude_channel(pg, secret_key, claude, model)
    bad = anthropic.AsyncAnthropic(
        base_url=stack.gateway_url, api_key="sk-not-a-key", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as denied:
        await bad.messages.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": denied.value.body["error"]["message"]},  # type: ignore[index]
    }
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as raw:
        # Anthropic's own header works too.
        headers = {"x-api-key": tenant.key, "anthropic-version": "2023-06-01"}
        missing = await raw.post(
            "/v1/messages",
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert missing.status_code == 400
        assert missing.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        }
        ok = await raw.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert ok.status_code == 200 and ok.json()["type"] == "message"
        # The provider's own refusal, in Anthropic's words and type.
        invalid = await raw.post(
            "/v1/messages",
            json={
                "model": model,
                "max_tokens": 5,
                "messages": [{"role": "assistant", "content": "x"}],
            },
            headers=headers,
        )
        assert invalid.status_code == 400
        assert invalid.json()["error"] == {
            "type": "invalid_request_error",
            "message": 'messages: first message must use the "user" role',
        }
        claude.app.state.fail_next.append(
            (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        )
        overloaded = await raw.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert overloaded.status_code == 529
        assert overloaded.json()["error"]["type"] == "overloaded_error"
        # A stream broken off by the provider ends with Anthropic's error event.
        claude.app.state.stream_errors.append(
            StreamError(after=3, error_type="api_error", message="boom")
        )
        broken = await raw.post(
            "/v1/messages",
            json={
                "model": model,
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers=headers,
        )
        frames = broken.content.decode().strip().split("\n\n")
        assert frames[0].startswith("event: message_start")
        assert frames[-1].startswith("event: error\n")
        assert orjson.loads(frames[-1].split("data: ", 1)[1])["error"]["type"] == "api_error"
    await ledger_row(pg, tenant, 4)
