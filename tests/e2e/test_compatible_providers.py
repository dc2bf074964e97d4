"""OpenAI-like providers through the gateway with the openai SDK, each against a strict
simulator of its own paths and quirks (``unigate_sim.compatible``): DeepSeek's reasoning
deltas and cache-hit usage, Groq's stream usage in ``x_groq``, Zhipu's ``/api/paas/v4``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate import admin
from unigate_sim.compatible import CompatibleSimulator, create_compatible_app, reasoning_text
from unigate_sim.openai import count_tokens

DEEPSEEK, ZHIPU, GROQ = 36, 16, 29
BAD_PARAMS = "API \u8c03\u7528\u53c2\u6570\u6709\u8bef"  # Zhipu: "bad API call parameters"


class Simulated:
    """One provider simulator on its own port."""

    def __init__(self, provider: str) -> None:
        self.server = ThreadedServer(create_compatible_app(provider, {SIM_KEY}))
        self.server.start()

    @property
    def app(self) -> CompatibleSimulator:
        app: CompatibleSimulator = self.server.server.config.app
        return app

    @property
    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.app.state.calls
        return calls


@pytest.fixture
def simulated() -> Iterator[Callable[[str], Simulated]]:
    made: list[Simulated] = []

    def make(provider: str) -> Simulated:
        made.append(Simulated(provider))
        return made[-1]

    yield make
    for sim in made:
        sim.server.stop()


async def provider_channel(
    pg: asyncpg.Pool, secret_key: str, channel_type: int, base_url: str, models: dict[str, str]
) -> None:
    """A channel of ``channel_type`` serving fresh aliases mapped to the provider's models."""
    await admin.create_channel(
        pg,
        secret_key=secret_key,
        type=channel_type,
        name=f"type-{channel_type}",
        key=SIM_KEY,
        base_url=base_url,
        models=",".join(models),
        model_mapping=models,
    )


def alias(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


async def rows(pg: asyncpg.Pool, token_id: int, n: int) -> list[asyncpg.Record]:
    await wait_for_rows(pg, token_id, n)
    # Events may be applied in any order: streamed rows last, then by prompt and cache.
    found: list[asyncpg.Record] = await pg.fetch(
        "SELECT * FROM logs WHERE token_id = $1"
        " ORDER BY is_stream, cached_tokens, prompt_tokens, id",
        token_id,
    )
    return found


async def test_deepseek_reasoning_stream_and_cache_hits_in_the_ledger(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[str], Simulated],
) -> None:
    sim = simulated("deepseek")
    chat, reasoner = alias("ds-chat"), alias("ds-reasoner")
    # DeepSeek's API is rooted at the bare host: the channel gives only scheme and host.
    await provider_channel(
        pg,
        secret_key,
        DEEPSEEK,
        sim.server.url,
        {chat: "deepseek-chat", reasoner: "deepseek-reasoner"},
    )
    history: list[Any] = [
        {"role": "system", "content": "You are a careful assistant with a long system prompt."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
    ]

    first = await client.chat.completions.create(
        model=chat, messages=[*history, {"role": "user", "content": "one"}]
    )
    assert first.choices[0].message.content == "Echo: one"
    assert first.usage is not None and first.usage.model_extra is not None
    assert first.usage.model_extra["prompt_cache_hit_tokens"] == 0
    second = await client.chat.completions.create(
        model=chat, messages=[*history, {"role": "user", "content": "two"}]
    )
    assert second.usage is not None and second.usage.model_extra is not None
    hit = second.usage.model_extra["prompt_cache_hit_tokens"]
    assert hit > 0
    assert sim.calls[-1]["path"] == "/v1/chat/completions"  # inner route the simulator served

    messages: list[Any] = [*history, {"role": "user", "content": "think this through"}]
    stream = await client.chat.completions.create(model=reasoner, messages=messages, stream=True)
    reasoning, content = "", ""
    async for chunk in stream:
        assert chunk.usage is None  # the client did not ask for usage
        if chunk.choices:
            delta = chunk.choices[0].delta
            extra = delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            content += delta.content or ""
    assert reasoning == reasoning_text(messages)
    assert content == "Echo: think this through"

    ledger = await rows(pg, tenant.token_id, 3)
    assert [r["cached_tokens"] for r in ledger] == [0, hit, hit]
    assert [r["estimated"] for r in ledger] == [False, False, False]
    assert ledger[1]["prompt_tokens"] == second.usage.prompt_tokens
    streamed = ledger[2]
    assert streamed["is_stream"] and streamed["upstream_model"] == "deepseek-reasoner"
    assert streamed["completion_tokens"] == count_tokens(content) + count_tokens(reasoning)


async def test_groq_stream_usage_from_x_groq_is_exact(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[str], Simulated],
) -> None:
    sim = simulated("groq")
    model = alias("groq-llama")
    await provider_channel(
        pg, secret_key, GROQ, sim.server.url + "/openai/v1", {model: "llama-3.3-70b-versatile"}
    )
    hello: list[Any] = [{"role": "user", "content": "hello groq world"}]

    plain = await client.chat.completions.create(model=model, messages=hello)
    assert plain.choices[0].message.content == "Echo: hello groq world"

    stream = await client.chat.completions.create(model=model, messages=hello, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello groq world"
    last_extra = chunks[-1].model_extra or {}
    assert last_extra["x_groq"]["usage"]["completion_tokens"] == count_tokens(text)
    assert all(c.usage is None for c in chunks)  # Groq's answer: no top-level usage

    ledger = await rows(pg, tenant.token_id, 2)
    assert [r["estimated"] for r in ledger] == [False, False]
    assert ledger[1]["is_stream"]
    assert ledger[1]["completion_tokens"] == count_tokens(text)
    assert plain.usage is not None
    assert ledger[1]["prompt_tokens"] == plain.usage.prompt_tokens
    assert all(c["path"] == "/v1/chat/completions" for c in sim.calls)


async def test_zhipu_paths_and_errors(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[str], Simulated],
) -> None:
    sim = simulated("zhipu")
    model = alias("glm")
    await provider_channel(
        pg, secret_key, ZHIPU, sim.server.url + "/api/paas/v4", {model: "glm-4-flash"}
    )
    hello: list[Any] = [{"role": "user", "content": "ni hao"}]
    resp = await client.chat.completions.create(model=model, messages=hello)
    assert resp.choices[0].message.content == "Echo: ni hao"
    stream = await client.chat.completions.create(
        model=model, messages=hello, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: ni hao"
    assert chunks[-1].usage is not None

    # A provider error in Zhipu's words reaches the client OpenAI-shaped, with its status.
    sim.app.state.fail_next.append((400, {"error": {"code": "1210", "message": BAD_PARAMS}}))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=model, messages=hello)
    error = info.value.response.json()["error"]
    assert error["message"] == BAD_PARAMS
    assert error["code"] == "1210" and error["type"] == "invalid_request_error"
    # A rejected channel key is never shown as the client's 401.
    # (Queued for every attempt the gateway may make before it gives up.)
    sim.app.state.fail_next.extend(
        [(401, {"error": {"code": "1000", "message": "authentication failed"}})] * 3
    )
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=model, messages=hello)
    assert failed.value.status_code == 502
    assert failed.value.response.json()["error"]["code"] == "upstream_auth_failed"
    await rows(pg, tenant.token_id, 4)


def test_simulators_reject_wrong_keys_and_foreign_paths(
    simulated: Callable[[str], Simulated],
) -> None:
    import httpx

    zhipu, deepseek = simulated("zhipu"), simulated("deepseek")
    body = {"model": "glm-4-flash", "messages": [{"role": "user", "content": "x"}]}
    auth = {"Authorization": f"Bearer {SIM_KEY}"}
    ok = httpx.post(f"{zhipu.server.url}/api/paas/v4/chat/completions", json=body, headers=auth)
    assert ok.status_code == 200
    wrong = httpx.post(
        f"{zhipu.server.url}/api/paas/v4/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-wrong-key-000000000"},
    )
    assert wrong.status_code == 401 and "error" in wrong.json()
    # Zhipu does not serve OpenAI's /v1 layout.
    assert (
        httpx.post(f"{zhipu.server.url}/v1/chat/completions", json=body, headers=auth).status_code
        == 404
    )
    body["model"] = "deepseek-chat"
    for path in ("/chat/completions", "/v1/chat/completions"):
        r = httpx.post(f"{deepseek.server.url}{path}", json=body, headers=auth)
        assert r.status_code == 200, path
    assert (
        httpx.post(
            f"{deepseek.server.url}/api/paas/v4/chat/completions", json=body, headers=auth
        ).status_code
        == 404
    )
