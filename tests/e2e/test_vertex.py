"""Google Vertex AI channels (type 42) through the gateway with the openai SDK, against the
Vertex simulator: a throwaway service account's JWT is exchanged at the simulator's token
endpoint (signature, audience, scope and times verified), the token is reused across calls,
and Gemini's protocol is spoken at Vertex's project/location path."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import orjson
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
from unigate_sim.gemini import (
    BLOCK_WORD,
    create_vertex_app,
    new_service_account,
    prompt_tokens,
    register,
)
from unigate_sim.gemini.service import SimState
from unigate_sim.openai import count_tokens

VERTEX = 42
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
HELLO: list[Any] = [{"role": "user", "content": "hello vertex world"}]


class Vertex(Simulator):
    """The Vertex AI + OAuth simulator, with one registered service account."""

    def __init__(self) -> None:
        super().__init__(create_vertex_app())
        self.project = f"proj-{secrets.token_hex(3)}"
        info, account = new_service_account(self.project, self.server.url + "/token")
        register(self.app, info, account)
        self.key = orjson.dumps(info).decode()

    @property
    def app(self) -> Starlette:
        app: Starlette = self.server.server.config.app
        return app

    @property
    def state(self) -> SimState:
        state: SimState = self.app.state.sim
        return state


@pytest.fixture
def vertex() -> Iterator[Vertex]:
    yield from running(Vertex())


async def vertex_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    vertex: Vertex,
    upstream: str,
    key: str | None = None,
    region: str = "us-central1",
) -> str:
    name = f"vtx-{secrets.token_hex(4)}"
    await create_mapped_channel(
        pg,
        secret_key,
        type=VERTEX,
        name="vertex",
        key=key or vertex.key,
        base_url=vertex.url,
        models={name: upstream},
        config={"region": region},
    )
    return name


async def test_chat_and_stream_with_one_token_fetch(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    model = await vertex_channel(pg, secret_key, vertex, "gemini-2.5-flash", region="europe-west4")
    messages: list[Any] = [{"role": "system", "content": "be terse"}, *HELLO]
    plain = await client.chat.completions.create(model=model, messages=messages)
    assert plain.choices[0].message.content == "Echo: hello vertex world"
    call = vertex.state.calls[-1]
    assert call["path"] == (
        f"/v1/projects/{vertex.project}/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert call["body"]["systemInstruction"] == {"parts": [{"text": "be terse"}]}
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        prompt_tokens(call["body"]),
        count_tokens("Echo: hello vertex world"),
        False,
    )

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "Echo: hello vertex world"
    )
    assert vertex.state.calls[-1]["path"].endswith(":streamGenerateContent")
    usage = chunks[-1].usage
    assert usage is not None
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )

    await asyncio.gather(
        *(client.chat.completions.create(model=model, messages=HELLO) for _ in range(8))
    )
    # Ten calls, one token exchange: the relay caches the access token per service account.
    assert vertex.app.state.token_requests == 1
    assert len(vertex.app.state.issued) == 1


async def test_tool_round_trip_image_and_safety(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    model = await vertex_channel(pg, secret_key, vertex, "gemini-2.5-pro")
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "weather in Bergen?"}]
    called = await client.chat.completions.create(
        model=model, messages=messages, tools=tools, reasoning_effort="low"
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    # Thinking was on: the thought came back as reasoning_content and counted as output.
    assert (choice.message.model_extra or {})[
        "reasoning_content"
    ] == "Thinking about: weather in Bergen?"
    assert called.usage is not None
    assert called.usage.completion_tokens > count_tokens(
        choice.message.tool_calls[0].function.arguments
    )
    messages += [
        choice.message.model_dump(exclude_none=True, exclude={"reasoning_content"}),
        {
            "role": "tool",
            "tool_call_id": choice.message.tool_calls[0].id,
            "content": '{"sky": "grey"}',
        },
    ]
    answered = await client.chat.completions.create(
        model=model, messages=messages, tools=tools, reasoning_effort="low"
    )
    # The thought signature rode in the tool call id and went back with the call (the
    # simulator refuses a forged one).
    sent = vertex.state.calls[-1]["body"]["contents"]
    assert "thoughtSignature" in sent[1]["parts"][0]
    assert sent[2]["parts"][0]["functionResponse"]["response"] == {"sky": "grey"}
    assert answered.choices[0].message.content == 'Echo: {"sky":"grey"}'

    image: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        }
    ]
    seen = await client.chat.completions.create(model=model, messages=image)
    assert seen.choices[0].message.content == "Echo: describe"
    assert (
        vertex.state.calls[-1]["body"]["contents"][0]["parts"][1]["inlineData"]["mimeType"]
        == "image/png"
    )

    blocked = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"{BLOCK_WORD} it"}]
    )
    assert blocked.choices[0].finish_reason == "content_filter"
    await ledger_row(pg, tenant, 4)


async def test_embeddings_with_exact_token_counts(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    model = await vertex_channel(pg, secret_key, vertex, "text-embedding-005")
    result = await client.embeddings.create(
        model=model, input=["first text", "second text"], dimensions=256
    )
    assert [len(d.embedding) for d in result.data] == [256, 256]
    call = vertex.state.calls[-1]
    assert call["method"] == "predict"
    assert call["body"] == {
        "instances": [{"content": "first text"}, {"content": "second text"}],
        "parameters": {"outputDimensionality": 256},
    }
    expected = count_tokens("first text") + count_tokens("second text")
    assert result.usage.prompt_tokens == expected
    logged = await ledger_row(pg, tenant, 1)
    assert logged["prompt_tokens"] == expected and not logged["estimated"]


async def test_errors_and_a_foreign_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    model = await vertex_channel(pg, secret_key, vertex, "gemini-2.5-flash")
    vertex.state.fail_next += [
        (
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Resource exhausted. Please try again later.",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
        )
    ] * 5
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=model, messages=HELLO)
    vertex.state.fail_next.clear()
    missing = await vertex_channel(pg, secret_key, vertex, "gemini-0")
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model=missing, messages=HELLO)
    assert "Publisher Model" in not_found.value.response.json()["error"]["message"]

    # A service account key the token endpoint does not know signs the assertion: refused,
    # never shown as the client's 401, and the channel is disabled.
    foreign, _ = new_service_account(vertex.project, vertex.server.url + "/token", name="rogue")
    rogue = await vertex_channel(
        pg, secret_key, vertex, "gemini-2.5-flash", key=orjson.dumps(foreign).decode()
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=rogue, messages=HELLO)
    error = assert_upstream_auth_failed(failed.value)
    assert "BEGIN PRIVATE KEY" not in error["message"]
    channel_id = await pg.fetchval("SELECT channel_id FROM abilities WHERE model = $1", rogue)
    await eventually_disabled(pg, channel_id)


async def test_claude_on_vertex(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, vertex: Vertex
) -> None:
    """Claude through Vertex's anthropic publisher: rawPredict / streamRawPredict with the
    Messages body (``vertex-2023-10-16``, no ``model``), the same OAuth token as Gemini."""
    model = await vertex_channel(pg, secret_key, vertex, "claude-3-5-sonnet-20241022")
    messages: list[Any] = [{"role": "system", "content": "be terse"}, *HELLO]
    plain = await client.chat.completions.create(model=model, messages=messages)
    assert plain.choices[0].message.content == "Echo: hello vertex world"
    call = vertex.state.calls[-1]
    assert call["path"] == (
        f"/v1/projects/{vertex.project}/locations/us-central1/publishers/anthropic/models/"
        "claude-3-5-sonnet-v2@20241022:rawPredict"
    )
    assert call["body"]["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in call["body"] and call["body"]["system"] == "be terse"
    usage = call["usage"]
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
        False,
    )

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello vertex world"
    streamed = vertex.state.calls[-1]
    assert streamed["path"].endswith("claude-3-5-sonnet-v2@20241022:streamRawPredict")
    assert streamed["body"]["stream"] is True
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"]) == (
        streamed["usage"]["input_tokens"],
        streamed["usage"]["output_tokens"],
    )
    assert vertex.app.state.token_requests == 1

    # Vertex stops accepting the token: not the channel's fault (it stays enabled); the next
    # request fetches a new token.
    vertex.app.state.issued.clear()
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=model, messages=HELLO)
    assert refused.value.response.json()["error"]["code"] == "upstream_token_refused"
    again = await client.chat.completions.create(model=model, messages=HELLO)
    assert again.choices[0].message.content == "Echo: hello vertex world"
    assert vertex.app.state.token_requests == 2
