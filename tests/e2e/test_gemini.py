"""Google Gemini channels (type 24) through the gateway with the openai SDK, against the strict
Gemini API simulator (``unigate_sim.gemini``): translated requests, answers, streams, usage in
the ledger, safety blocks, Google's errors and an invalid key disabling the channel."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest
from starlette.applications import Starlette

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    Simulator,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
    running,
)
from unigate_sim.gemini import BLOCK_WORD, create_gemini_app, prompt_tokens
from unigate_sim.gemini.service import SimState
from unigate_sim.openai import count_tokens

GEMINI = 24
KEY = "AIzaSy-sim-" + "g" * 28
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()


class Google(Simulator):
    """The Gemini API simulator on its own port."""

    def __init__(self) -> None:
        super().__init__(create_gemini_app({KEY}))

    @property
    def app(self) -> Starlette:
        app: Starlette = self.server.server.config.app
        return app

    @property
    def state(self) -> SimState:
        state: SimState = self.app.state.sim
        return state

    def last_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.state.calls[-1]["body"]
        return body


@pytest.fixture
def google() -> Iterator[Google]:
    yield from running(Google())


async def gemini_channel(
    pg: asyncpg.Pool, secret_key: str, google: Google, upstream: str, key: str = KEY, **extra: Any
) -> str:
    """A type-24 channel serving a fresh model name mapped to ``upstream``; returns the name."""
    name = f"gem-{secrets.token_hex(4)}"
    await create_mapped_channel(
        pg,
        secret_key,
        type=GEMINI,
        name="gemini",
        key=key,
        base_url=google.url,
        models={name: upstream},
        **extra,
    )
    return name


async def test_chat_stream_system_prompt_and_exact_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(
        pg, secret_key, google, "gemini-2.5-flash", system_prompt="Answer in English."
    )
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello gemini world"},
    ]
    plain = await client.chat.completions.create(
        model=model, messages=messages, temperature=0.2, max_tokens=50
    )
    assert plain.choices[0].message.content == "Echo: hello gemini world"
    assert plain.choices[0].finish_reason == "stop"
    call = google.state.calls[-1]
    assert call["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    # The channel's system prompt goes first, then the client's: both in systemInstruction.
    assert call["body"]["systemInstruction"] == {
        "parts": [{"text": "Answer in English.\nYou are terse."}]
    }
    assert call["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello gemini world"}]}]
    assert call["body"]["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}
    assert plain.usage is not None
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
        False,
    )
    assert first["upstream_model"] == "gemini-2.5-flash"
    # ... which is what the simulator reported for exactly what it was sent.
    assert first["prompt_tokens"] == prompt_tokens(call["body"])
    assert first["completion_tokens"] == count_tokens("Echo: hello gemini world")

    # Streamed, without include_usage: no usage chunk, but the ledger still has exact usage.
    stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
    chunks = [c async for c in stream]
    assert google.state.calls[-1]["path"].endswith(":streamGenerateContent")
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hello gemini world"
    assert chunks[-1].choices[0].finish_reason == "stop"
    second = await ledger_row(pg, tenant, 2)
    assert second["is_stream"] and not second["estimated"]
    assert (second["prompt_tokens"], second["completion_tokens"]) == (
        first["prompt_tokens"],
        first["completion_tokens"],
    )

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    third = await ledger_row(pg, tenant, 3)
    assert (third["prompt_tokens"], third["completion_tokens"]) == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
    )


async def test_tool_call_round_trip_and_image_part(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(pg, secret_key, google, "gemini-2.5-flash")
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": ["string", "null"]},
                    },
                    "required": ["city"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = await client.chat.completions.create(model=model, messages=messages, tools=tools)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather" and tool_call.id
    declaration = google.last_body()["tools"][0]["functionDeclarations"][0]
    assert "additionalProperties" not in declaration["parameters"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    answered = await client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert answered.choices[0].message.content == "Echo: sunny, 21 C"
    sent = google.last_body()["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"content": "sunny, 21 C"},
    }

    # Streamed, the call arrives as a tool_calls delta.
    stream = await client.chat.completions.create(
        model=model, messages=messages[:1], tools=tools, stream=True
    )
    chunks = [c async for c in stream]
    deltas = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert [d.function.name for d in deltas if d.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    image: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in this picture"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]
    seen = await client.chat.completions.create(model=model, messages=image)
    assert seen.choices[0].message.content == "Echo: what is in this picture"
    parts = google.last_body()["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[2]["fileData"] == {
        "mimeType": "image/jpeg",
        "fileUri": "https://example.com/cat.jpg",
    }
    logged = await ledger_row(pg, tenant, 4)
    assert seen.usage is not None and logged["prompt_tokens"] == seen.usage.prompt_tokens


async def test_embeddings(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(pg, secret_key, google, "text-embedding-004")
    result = await client.embeddings.create(model=model, input=["first text", "second text"])
    assert [len(d.embedding) for d in result.data] == [768, 768]
    assert [d.index for d in result.data] == [0, 1]
    call = google.state.calls[-1]
    assert call["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in call["body"]["requests"]] == [
        "first text",
        "second text",
    ]
    floats = await client.embeddings.create(model=model, input="one", encoding_format="float")
    assert abs(sum(x * x for x in floats.data[0].embedding) - 1) < 1e-5
    logged = await ledger_row(pg, tenant, 1)
    # Gemini reports no token counts for embeddings: counted, and marked so.
    assert logged["prompt_tokens"] == result.usage.prompt_tokens > 0 and logged["estimated"]


async def test_safety_block_is_a_content_filter_finish(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(pg, secret_key, google, "gemini-2.0-flash")
    messages: list[Any] = [{"role": "user", "content": f"how to {BLOCK_WORD} a zombie process"}]
    refused = await client.chat.completions.create(model=model, messages=messages)
    assert refused.choices[0].finish_reason == "content_filter"
    assert refused.choices[0].message.content == ""
    assert refused.usage is not None and refused.usage.completion_tokens == 0
    stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    logged = await ledger_row(pg, tenant, 2)
    assert logged["prompt_tokens"] == refused.usage.prompt_tokens and not logged["estimated"]


async def test_provider_errors_are_openai_shaped(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(pg, secret_key, google, "gemini-2.5-flash")
    hello: list[Any] = [{"role": "user", "content": "hello"}]
    google.state.fail_next += [
        (
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Resource has been exhausted (e.g. check quota).",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
        )
    ] * 5
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model=model, messages=hello)
    assert limited.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    google.state.fail_next.clear()

    # A conversation Gemini refuses (a tool result with no call) never reaches it.
    before = len(google.state.calls)
    with pytest.raises(openai.BadRequestError) as orphan:
        await client.chat.completions.create(
            model=model, messages=[*hello, {"role": "tool", "tool_call_id": "x", "content": "r"}]
        )
    assert orphan.value.response.json()["error"]["param"] == "messages[1].tool_call_id"
    assert len(google.state.calls) == before

    # Gemini's own 400 passes through in its words.
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(
            model=model, messages=hello, temperature=2, top_p=1, n=9
        )
    refusal = bad.value.response.json()["error"]
    assert refusal["code"] == "invalid_argument" and "candidateCount" in refusal["message"]

    missing = await gemini_channel(pg, secret_key, google, "gemini-0-nonexistent")
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model=missing, messages=hello)
    assert (
        "is not found for API version v1beta" in not_found.value.response.json()["error"]["message"]
    )

    google.state.fail_next.append(
        (
            503,
            {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded. Please try again later.",
                    "status": "UNAVAILABLE",
                }
            },
        )
    )
    with pytest.raises(openai.APIStatusError) as overloaded:
        await client.chat.completions.create(model=model, messages=hello, stream=True)
    assert overloaded.value.status_code == 503
    google.state.fail_next.clear()


async def test_invalid_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    bad_key = "AIzaSy-revoked-" + secrets.token_hex(8)
    model = await gemini_channel(pg, secret_key, google, "gemini-2.5-flash", key=bad_key)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    error = assert_upstream_auth_failed(failed.value)
    assert bad_key not in error["message"]
    channel_id = await pg.fetchval("SELECT channel_id FROM abilities WHERE model = $1", model)
    reason = await eventually_disabled(pg, channel_id)
    assert "upstream_auth_failed" in reason and bad_key not in reason
