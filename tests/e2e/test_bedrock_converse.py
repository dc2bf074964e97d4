"""Every model family a Bedrock channel (type 33) hosts besides Claude — Llama, Mistral, Nova,
Cohere — through the Converse API, with the openai SDK through the gateway against the
Bedrock simulator (``unigate_sim.bedrock``: SigV4 recomputed, Converse's validation, the
binary event stream of ConverseStream): chat and stream per family with the ledger equal to
Bedrock's ``usage`` / ``metadata``, tools, what Bedrock refuses (a 400 for the client), a
wrong gateway key (401) and a refused channel secret (502, channel disabled)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import orjson
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    WEATHER_TOOL,
    alias,
    assert_upstream_auth_failed,
    eventually_disabled,
    ledger_row,
    running,
)
from tests.e2e.test_bedrock import Bedrock, bedrock_channel
from unigate_cli.devstack import Stack
from unigate_sim.bedrock import BedrockError, StreamException

FAMILIES = [
    pytest.param("meta.llama3-1-70b-instruct-v1:0", id="llama"),
    pytest.param("mistral.mistral-large-2407-v1:0", id="mistral"),
    pytest.param("us.amazon.nova-pro-v1:0", id="nova"),
    pytest.param("cohere.command-r-plus-v1:0", id="cohere"),
]
NOVA = "amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    yield from running(Bedrock())


def reported(call: dict[str, Any]) -> tuple[int, int]:
    usage = call["usage"]
    return usage["inputTokens"], usage["outputTokens"]


def quoted(model_id: str) -> str:
    return model_id.replace(":", "%3A")


@pytest.mark.parametrize("model_id", FAMILIES)
async def test_chat_and_stream_through_converse(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    bedrock: Bedrock,
    model_id: str,
) -> None:
    model = alias("converse")
    await bedrock_channel(pg, secret_key, bedrock, model, upstream=model_id)
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello converse"},
    ]
    answer = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=100, temperature=0.5, stop=["never"]
    )
    assert answer.choices[0].message.content == "Echo: hello converse"
    assert answer.choices[0].finish_reason == "stop" and answer.model == model_id
    call = bedrock.calls[-1]
    assert call["path"] == f"/model/{quoted(model_id)}/converse" and call["status"] == 200
    assert call["body"] == {
        "messages": [{"role": "user", "content": [{"text": "hello converse"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["never"]},
    }
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == reported(call)
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        *reported(call),
        False,
    )
    assert first["upstream_model"] == model_id

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello converse"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    streamed = bedrock.calls[-1]
    assert streamed["path"] == f"/model/{quoted(model_id)}/converse-stream"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == reported(streamed)
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        *reported(streamed),
        False,
    )
    assert second["is_stream"]

    cut = await client.chat.completions.create(model=model, messages=messages, max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 2


async def test_tool_round_trip_streamed_on_nova(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock
) -> None:
    model = alias("converse-tools")
    await bedrock_channel(pg, secret_key, bedrock, model, upstream=NOVA)
    asked: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = await client.chat.completions.create(
        model=model, messages=asked, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert orjson.loads(tool_call.function.arguments) == {"city": "Oslo"}
    sent = bedrock.calls[-1]["body"]["toolConfig"]
    assert sent["toolChoice"] == {"any": {}}
    assert sent["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]

    # The call streamed: its id and name first, then the arguments in pieces.
    streamed = await client.chat.completions.create(
        model=model, messages=asked, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in streamed]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert orjson.loads(arguments) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    # The result goes back as a toolResult block of a user turn, merged with the next
    # user message (Converse wants the roles to alternate).
    history: Any = [
        *asked,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    stream = await client.chat.completions.create(
        model=model, messages=history, tools=[WEATHER_TOOL], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: sunny, 21 C"
    turns = bedrock.calls[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"toolUse": {"toolUseId": tool_call.id, "name": "get_weather", "input": {"city": "Oslo"}}}
    ]
    assert turns[2]["content"] == [
        {
            "toolResult": {
                "toolUseId": tool_call.id,
                "content": [{"text": "sunny, 21 C"}],
                "status": "success",
            }
        }
    ]


async def test_what_bedrock_refuses_is_the_clients_400(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock
) -> None:
    llama = alias("converse-llama")
    await bedrock_channel(pg, secret_key, bedrock, llama, upstream=LLAMA)
    # Llama 3.1 calls tools through Converse, but not while streaming.
    with pytest.raises(openai.BadRequestError) as streamed_tools:
        await client.chat.completions.create(
            model=llama,
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    assert "doesn't support tool use in streaming mode" in streamed_tools.value.message
    assert bedrock.calls[-1]["status"] == 400
    called = await client.chat.completions.create(
        model=llama,
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    )
    assert called.choices[0].finish_reason == "tool_calls"

    # Mistral 7B Instruct takes no system prompt; a forced tool only some models take.
    small = alias("converse-mistral-7b")
    await bedrock_channel(
        pg, secret_key, bedrock, small, upstream="mistral.mistral-7b-instruct-v0:2"
    )
    with pytest.raises(openai.BadRequestError) as system:
        await client.chat.completions.create(
            model=small,
            messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
        )
    assert "doesn't support system messages" in system.value.message
    with pytest.raises(openai.BadRequestError) as forced:
        await client.chat.completions.create(
            model=llama,
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        )
    assert "toolConfig.toolChoice.any" in forced.value.message

    unknown = alias("converse-unknown")
    await bedrock_channel(pg, secret_key, bedrock, unknown, upstream="meta.llama9-v1:0")
    with pytest.raises(openai.BadRequestError) as bad_model:
        await client.chat.completions.create(
            model=unknown, messages=[{"role": "user", "content": "hi"}]
        )
    assert "model identifier is invalid" in bad_model.value.message


async def test_throttling_before_and_during_a_stream(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock
) -> None:
    model = alias("converse-throttled")
    await bedrock_channel(pg, secret_key, bedrock, model, upstream=NOVA)
    bedrock.state.fail_next.append(BedrockError("ThrottlingException", "Too many requests."))
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    # Throttled after three events: the client's stream ends in an error, and what was
    # generated before is billed (counted, marked estimated: Bedrock sent no metadata).
    bedrock.state.stream_exceptions.append(
        StreamException(after=3, kind="throttlingException", message="Slow down")
    )
    with pytest.raises(openai.APIError):
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello converse"}], stream=True
        )
        async for _ in stream:
            pass
    row = await ledger_row(pg, tenant, 2)
    assert row["estimated"] and row["prompt_tokens"] > 0


async def test_bad_keys(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    bedrock: Bedrock,
    stack: Stack,
) -> None:
    model = alias("converse-keys")
    await bedrock_channel(pg, secret_key, bedrock, model, upstream=NOVA)
    # The client's own key is wrong: OpenAI's 401, nothing sent to Bedrock.
    calls_before = len(bedrock.calls)
    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    assert len(bedrock.calls) == calls_before

    # The channel's secret is wrong: AWS refuses the signature; a 502 and the channel is off.
    broken_model = alias("converse-bad-secret")
    wrong = f"{bedrock.akid}|{secrets.token_urlsafe(30)}"
    broken = await bedrock_channel(pg, secret_key, bedrock, broken_model, upstream=NOVA, key=wrong)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(
            model=broken_model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert_upstream_auth_failed(refused.value, wrong.split("|")[1])
    assert len(bedrock.calls) == calls_before
    reason = await eventually_disabled(pg, broken)
    assert wrong.split("|")[1] not in reason
