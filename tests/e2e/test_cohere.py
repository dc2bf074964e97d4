"""Cohere channels (type 35) through the gateway with the openai SDK, against the strict v2
simulator (``unigate_sim.cohere``): chat and streams, tools, embeddings, rerank, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    Simulator,
    alias,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
    running,
)
from unigate_cli.devstack import Stack
from unigate_sim.cohere import count_tokens, create_cohere_app

COHERE = 35
KEY = "co-e2e-" + "k" * 36
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


class Cohere(Simulator):
    def __init__(self) -> None:
        super().__init__(create_cohere_app({KEY}))

    @property
    def last(self) -> dict[str, Any]:
        call: dict[str, Any] = self.state.calls[-1]
        return call


@pytest.fixture
def cohere() -> Iterator[Cohere]:
    yield from running(Cohere())


async def cohere_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Cohere,
    model: str,
    upstream: str = "command-r-08-2024",
    key: str = KEY,
    **kw: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=COHERE,
        name="cohere",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        **kw,
    )


async def test_chat_stream_system_prompt_and_usage_on_tokens(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, cohere: Cohere
) -> None:
    model = alias("co")
    await cohere_channel(pg, secret_key, cohere, model, system_prompt="channel rules")
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello cohere"},
    ]
    plain = await client.chat.completions.create(
        model=model, messages=messages, top_p=1.0, stop=["never"], max_tokens=50
    )
    assert plain.choices[0].message.content == "Echo: hello cohere"
    body = cohere.last["body"]
    # The channel's prompt first, then the client's, both as Cohere system messages.
    assert body["messages"][:2] == [
        {"role": "system", "content": "channel rules"},
        {"role": "system", "content": "be brief"},
    ]
    assert (body["p"], body["stop_sequences"], body["max_tokens"]) == (0.99, ["never"], 50)
    first = await ledger_row(pg, tenant, 1)
    assert plain.usage is not None
    # Billed on Cohere's usage.tokens (system prompts and template included), not billed_units.
    assert first["prompt_tokens"] == plain.usage.prompt_tokens > count_tokens("hello cohere")
    assert first["completion_tokens"] == count_tokens("Echo: hello cohere")
    assert not first["estimated"]

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello cohere"
    )
    assert chunks[-1].usage is not None
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
        False,
    )
    assert second["prompt_tokens"] == first["prompt_tokens"]

    cut = await client.chat.completions.create(model=model, messages=messages, max_tokens=2)
    assert cut.choices[0].finish_reason == "length"


async def test_tool_call_round_trip(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, cohere: Cohere
) -> None:
    model = alias("co")
    await cohere_channel(pg, secret_key, cohere, model)
    asked: Any = [{"role": "user", "content": "what is the weather in Oslo"}]
    first = await client.chat.completions.create(model=model, messages=asked, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert choice.message.content == "I will call get_weather to answer this."

    history: Any = [
        *asked,
        {"role": "assistant", "content": choice.message.content, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "rain, 9 C"},
    ]
    stream = await client.chat.completions.create(
        model=model, messages=history, tools=[WEATHER], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: rain, 9 C"
    sent = cohere.last["body"]["messages"]
    assert sent[1]["tool_plan"] == choice.message.content
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "rain, 9 C"}

    streamed = await client.chat.completions.create(
        model=model, messages=asked, tools=[WEATHER], stream=True
    )
    chunks = [c async for c in streamed]
    arguments = "".join(
        (d.function.arguments or "")
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for d in c.choices[0].delta.tool_calls
        if d.function
    )
    assert arguments == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_embeddings_and_rerank(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    cohere: Cohere,
    stack: Stack,
) -> None:
    embed_model, rerank_model = alias("co"), alias("co")
    await cohere_channel(pg, secret_key, cohere, embed_model, "embed-english-v3.0")
    await cohere_channel(pg, secret_key, cohere, rerank_model, "rerank-v3.5")
    vectors = await client.embeddings.create(model=embed_model, input=["red apple", "sky"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 1024
    assert cohere.last["body"]["input_type"] == "search_document"
    tokens = count_tokens("red apple") + count_tokens("sky")
    assert vectors.usage.prompt_tokens == tokens
    assert (await ledger_row(pg, tenant, 1))["prompt_tokens"] == tokens

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        response = await http.post(
            "/v1/rerank",
            headers={"Authorization": f"Bearer {tenant.key}"},
            json={
                "model": rerank_model,
                "query": "red apple",
                "documents": ["blue sky", "red apple pie", {"text": "apple"}],
                "top_n": 2,
                "return_documents": True,
            },
        )
    assert response.status_code == 200, response.text
    ranked = response.json()
    assert [r["index"] for r in ranked["results"]] == [1, 2]
    assert ranked["results"][0]["document"] == {"text": "red apple pie"}
    assert "return_documents" not in cohere.last["body"]
    assert ranked["meta"]["billed_units"]["search_units"] == 1
    # Priced per search unit (an alias with no price of its own: rerank-v3.5's 0.002 USD).
    row = await ledger_row(pg, tenant, 2)
    assert (row["unit"], row["quantity"], row["quota"]) == ("search_unit", 1, 1_000)


async def test_provider_errors_are_openai_errors(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, cohere: Cohere
) -> None:
    model = alias("co")
    await cohere_channel(pg, secret_key, cohere, model)
    with pytest.raises(openai.BadRequestError) as unknown_call:
        await client.chat.completions.create(
            model=model,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "nope", "content": "x"},
            ],
        )
    assert "does not match any tool call" in unknown_call.value.message

    cohere.state.faults.extend(
        [(429, "You are using a Trial key, which is limited to 10 API calls / minute.")] * 5
    )
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    cohere.state.faults.clear()

    cohere.state.faults.append((422, "No valid tool call or response generated"))
    with pytest.raises(openai.UnprocessableEntityError):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )


async def test_invalid_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, cohere: Cohere
) -> None:
    model = alias("co")
    broken = await cohere_channel(
        pg, secret_key, cohere, model, key="co-revoked-key-123", priority=10
    )
    await cohere_channel(pg, secret_key, cohere, model, priority=0)
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in reply if c.choices]) == (
        "Echo: hello"
    )
    reason = await eventually_disabled(pg, broken)
    assert "upstream_auth_failed" in reason and "co-revoked-key-123" not in reason
