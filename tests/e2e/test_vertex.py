"""Google Vertex AI channels (type 42) through the gateway with the openai SDK, against the
Vertex simulator: a throwaway service account's JWT is exchanged at the simulator's token
endpoint (signature, audience, scope and times verified), the token is reused across calls,
and Gemini's protocol is spoken at Vertex's project/location path."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import orjson
import pytest
from starlette.applications import Starlette

from tests.e2e.conftest import Tenant, ThreadedServer
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate import admin
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


class Vertex:
    """The Vertex AI + OAuth simulator, with one registered service account."""

    def __init__(self) -> None:
        self.server = ThreadedServer(create_vertex_app())
        self.server.start()
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
    sim = Vertex()
    yield sim
    sim.server.stop()


async def vertex_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    vertex: Vertex,
    upstream: str,
    key: str | None = None,
    region: str = "us-central1",
) -> str:
    name = f"vtx-{secrets.token_hex(4)}"
    await admin.create_channel(
        pg,
        secret_key=secret_key,
        type=VERTEX,
        name="vertex",
        key=key or vertex.key,
        base_url=vertex.server.url,
        models=name,
        model_mapping={name: upstream},
        config={"region": region},
    )
    return name


async def row(pg: asyncpg.Pool, tenant: Tenant, n: int) -> asyncpg.Record:
    await wait_for_rows(pg, tenant.token_id, n)
    found: asyncpg.Record = await pg.fetchrow(
        "SELECT * FROM logs WHERE token_id = $1 ORDER BY id OFFSET $2 LIMIT 1",
        tenant.token_id,
        n - 1,
    )
    return found


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
    first = await row(pg, tenant, 1)
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
    second = await row(pg, tenant, 2)
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
    await row(pg, tenant, 4)


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
    logged = await row(pg, tenant, 1)
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
    assert failed.value.status_code == 502
    error = failed.value.response.json()["error"]
    assert error["code"] == "upstream_auth_failed" and "BEGIN PRIVATE KEY" not in error["message"]
    channel_id = await pg.fetchval("SELECT channel_id FROM abilities WHERE model = $1", rogue)
    deadline = time.monotonic() + 10
    while await pg.fetchval("SELECT status FROM channels WHERE id = $1", channel_id) != 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
