"""iFlytek Spark channels (type 18) through the gateway with the openai SDK, against the
WebSocket simulator (``unigate_sim.spark``) that checks every signature and frame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    alias,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
)
from unigate_relay.providers.spark.convert import SYSTEM_ACK
from unigate_sim.spark import SparkApp, SparkServer, SparkSimulator

SPARK = 18
APP = SparkApp("e2eapp01", "ZTJlLXNwYXJrLXNlY3JldC12YWx1ZQ", "e2e0123456789abcdef0123456789abcd")
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def spark() -> Iterator[SparkServer]:
    server = SparkServer(SparkSimulator([APP]))
    server.start()
    yield server
    server.stop()


async def spark_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    server: SparkServer,
    model: str,
    upstream: str = "SparkDesk-v3.5",
    key: str = APP.channel_key,
    **kw: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=SPARK,
        name="spark",
        key=key,
        base_url=server.url,
        models={model: upstream},
        **kw,
    )


async def test_chat_stream_system_prompt_and_exact_usage(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    spark: SparkServer,
) -> None:
    model = alias("spark")
    await spark_channel(pg, secret_key, spark, model)
    messages: Any = [
        {"role": "system", "content": "answer briefly"},
        {"role": "user", "content": "hello spark world"},
    ]
    plain = await client.chat.completions.create(model=model, messages=messages, max_tokens=100)
    assert plain.choices[0].message.content == "Echo: hello spark world"
    assert plain.choices[0].finish_reason == "stop"
    call = spark.simulator.calls[-1]
    assert call["path"] == "/v3.5/chat"
    assert call["frame"]["parameter"]["chat"] == {"domain": "generalv3.5", "max_tokens": 100}
    assert call["frame"]["payload"]["message"]["text"][0] == {
        "role": "system",
        "content": "answer briefly",
    }
    first = await ledger_row(pg, tenant, 1)
    reported = call["usage"]
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        reported["prompt_tokens"],
        reported["completion_tokens"],
        False,
    )
    assert plain.usage is not None and plain.usage.prompt_tokens == reported["prompt_tokens"]

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello spark world"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    second = await ledger_row(pg, tenant, 2)
    reported = spark.simulator.calls[-1]["usage"]
    assert second["is_stream"] and not second["estimated"]
    assert (
        (second["prompt_tokens"], second["completion_tokens"])
        == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        == (reported["prompt_tokens"], reported["completion_tokens"])
    )

    # Without include_usage the client gets no usage chunk, the ledger still exact usage.
    stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
    assert all([c.usage is None async for c in stream])
    third = await ledger_row(pg, tenant, 3)
    assert not third["estimated"] and third["completion_tokens"] == reported["completion_tokens"]


async def test_channel_system_prompt_on_lite_is_a_user_turn(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, spark: SparkServer
) -> None:
    model = alias("spark")
    await spark_channel(pg, secret_key, spark, model, "SparkDesk-v1.1", system_prompt="be kind")
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Echo: hi"
    call = spark.simulator.calls[-1]
    assert call["path"] == "/v1.1/chat"
    assert call["frame"]["payload"]["message"]["text"] == [
        {"role": "user", "content": "be kind"},
        {"role": "assistant", "content": SYSTEM_ACK},
        {"role": "user", "content": "hi"},
    ]


async def test_function_call_round_trip(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, spark: SparkServer
) -> None:
    model = alias("spark")
    await spark_channel(pg, secret_key, spark, model, "SparkDesk-v4.0")
    asked: Any = [{"role": "user", "content": "what is the weather in Hefei"}]
    first = await client.chat.completions.create(model=model, messages=asked, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"what is the weather in Hefei"}'
    assert spark.simulator.calls[-1]["frame"]["payload"]["functions"]["text"][0]["name"] == (
        "get_weather"
    )

    history: Any = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    stream = await client.chat.completions.create(
        model=model, messages=history, tools=[WEATHER], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: Result of function get_weather: sunny, 21 C"
    turns = spark.simulator.calls[-1]["frame"]["payload"]["message"]["text"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]

    streamed = await client.chat.completions.create(
        model=model, messages=asked, tools=[WEATHER], stream=True
    )
    chunks = [c async for c in streamed]
    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert deltas and deltas[0][0].function and deltas[0][0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_provider_errors_are_openai_errors(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, spark: SparkServer
) -> None:
    model = alias("spark")
    await spark_channel(pg, secret_key, spark, model)
    hello: Any = [{"role": "user", "content": "hello"}]

    with pytest.raises(openai.BadRequestError) as too_long:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "word " * 9000}]
        )
    assert too_long.value.code == "context_length_exceeded"

    spark.simulator.faults.append((10013, "input content does not pass review"))
    with pytest.raises(openai.BadRequestError) as filtered:
        await client.chat.completions.create(model=model, messages=hello)
    assert filtered.value.code == "content_filter"

    spark.simulator.faults.extend([(11202, "over QPS")] * 5)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=model, messages=hello)
    spark.simulator.faults.clear()

    # Spark's chat takes no images: refused by the relay before any upstream call.
    before = len(spark.simulator.calls)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        )
    assert len(spark.simulator.calls) == before


@pytest.mark.parametrize(
    "key",
    [
        f"{APP.app_id}|{APP.api_secret}x|{APP.api_key}",  # signature fails: 401 on the handshake
        f"other001|{APP.api_secret}|{APP.api_key}",  # app id not the key's: 11200
    ],
)
async def test_rejected_credentials_disable_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, spark: SparkServer, key: str
) -> None:
    model = alias("spark")
    broken = await spark_channel(pg, secret_key, spark, model, key=key, priority=10)
    await spark_channel(pg, secret_key, spark, model, priority=0)
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "Echo: hello"
    reason = await eventually_disabled(pg, broken)
    assert "upstream_auth_failed" in reason
    assert APP.api_secret not in reason
