"""OpenAI-like providers through the gateway with the openai SDK, each against a strict
simulator of its own paths, key check, models, refusals and stream framing
(``unigate_sim.compatible``). One test body per behaviour, parametrised over the providers;
what differs per provider comes from the simulator's profile, so a relay that got a
provider's layout, usage placement or error mapping wrong fails here."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import SIM_KEY, Tenant
from tests.e2e.provider_support import (
    WEATHER_TOOL,
    Simulator,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
)
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate_sim.compatible import PROFILES, CompatibleSimulator, Profile, create_compatible_app
from unigate_sim.compatible.deepseek import reasoning_text
from unigate_sim.openai import count_tokens


@dataclass(frozen=True)
class Case:
    """One provider: its simulator, channel type and the base URL path of its channels."""

    provider: str
    channel_type: int
    base_path: str
    # What the provider's spec puts between the channel's base URL and the endpoint (One API
    # gives Spark v2 and Qianfan v2 channels the bare host; the version is the spec's).
    spec_prefix: str = ""

    @property
    def api_path(self) -> str:
        """The path the provider's endpoints sit under."""
        return self.base_path + self.spec_prefix

    @property
    def profile(self) -> Profile:
        return PROFILES[self.provider]

    @property
    def chat_model(self) -> str:
        return self.profile.chat_models[0]

    def served(self, endpoint: str) -> tuple[str, ...]:
        return self.profile.models.get(endpoint, ())

    def __str__(self) -> str:
        return self.provider


CASES = [
    # DeepSeek's API is rooted at the bare host: the channel gives only scheme and host.
    Case("deepseek", 36, ""),
    Case("groq", 29, "/openai/v1"),
    Case("zhipu", 16, "/api/paas/v4"),
    Case("moonshot", 25, "/v1"),
    Case("qwen", 17, "/compatible-mode/v1"),
    Case("zhinao360", 19, "/v1"),
    Case("mistral", 28, "/v1"),
    Case("ollama", 30, "/v1"),
    Case("xai", 45, "/v1"),
    Case("siliconflow", 44, "/v1"),
    Case("together", 39, "/v1"),
    Case("openrouter", 20, "/api/v1"),
    Case("stepfun", 32, "/v1"),
    Case("lingyi", 31, "/v1"),
    Case("doubao", 40, "/api/v3"),
    Case("baichuan", 26, "/v1"),
    Case("bailian", 49, "/compatible-mode/v1"),
    Case("gemini_openai", 51, "/v1beta/openai"),
    Case("novita", 41, "/v3/openai"),
    Case("minimax", 27, "/v1"),
    Case("spark", 48, "", "/v1"),
    Case("qianfan_v2", 47, "", "/v2"),
]
BY_NAME = {case.provider: case for case in CASES}
IMAGE_PART: Any = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


class Simulated(Simulator):
    """One provider simulator on its own port, and a channel to it."""

    def __init__(self, case: Case) -> None:
        self.case = case
        super().__init__(create_compatible_app(case.provider, {SIM_KEY}))

    @property
    def app(self) -> CompatibleSimulator:
        app: CompatibleSimulator = self.server.server.config.app
        return app

    @property
    def base_url(self) -> str:
        return self.server.url + self.case.base_path

    async def channel(
        self, pg: asyncpg.Pool, secret_key: str, models: dict[str, str], key: str = SIM_KEY
    ) -> int:
        """A channel of the provider's type serving fresh aliases mapped to its models."""
        return await create_mapped_channel(
            pg,
            secret_key,
            type=self.case.channel_type,
            name=f"sim-{self.case.provider}",
            key=key,
            base_url=self.base_url,
            models=models,
        )


@pytest.fixture
def simulated() -> Iterator[Callable[[Case], Simulated]]:
    made: list[Simulated] = []

    def make(case: Case) -> Simulated:
        made.append(Simulated(case))
        return made[-1]

    yield make
    for sim in made:
        sim.stop()


def alias(name: str) -> str:
    return f"{name.replace('/', '-')}-{secrets.token_hex(4)}"


async def rows(pg: asyncpg.Pool, token_id: int, n: int) -> list[asyncpg.Record]:
    await wait_for_rows(pg, token_id, n)
    # Events may be applied in any order: streamed rows last, then by prompt and cache.
    found: list[asyncpg.Record] = await pg.fetch(
        "SELECT * FROM logs WHERE token_id = $1"
        " ORDER BY is_stream, cached_tokens, prompt_tokens, id",
        token_id,
    )
    return found


def with_(endpoint: str) -> list[Case]:
    return [case for case in CASES if case.served(endpoint)]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_chat_and_stream_usage_are_exact_in_the_ledger(
    case: Case,
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    model = alias(case.provider)
    await sim.channel(pg, secret_key, {model: case.chat_model})
    hello: list[Any] = [{"role": "user", "content": f"hello {case.provider} world"}]

    plain = await client.chat.completions.create(model=model, messages=hello)
    assert plain.choices[0].message.content == f"Echo: hello {case.provider} world"
    assert plain.model == case.chat_model and plain.usage is not None

    # The client does not ask for usage; the relay must still find it wherever the provider
    # puts it (a usage chunk it asked for, the finish chunk, choices[0], x_groq).
    stream = await client.chat.completions.create(model=model, messages=hello, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    if case.profile.stream_usage in ("asked", "always"):
        # A usage-only chunk nobody asked for is withheld from the client.
        assert all(c.choices for c in chunks)

    ledger = await rows(pg, tenant.token_id, 2)
    assert [r["estimated"] for r in ledger] == [False, False]
    assert ledger[1]["is_stream"] and ledger[1]["upstream_model"] == case.chat_model
    assert ledger[1]["completion_tokens"] == count_tokens(text)
    assert ledger[0]["prompt_tokens"] == ledger[1]["prompt_tokens"] == plain.usage.prompt_tokens
    assert [c["path"] for c in sim.calls] == [case.api_path + "/chat/completions"] * 2


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_tool_call_round_trip(
    case: Case,
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    model = alias(case.provider)
    await sim.channel(pg, secret_key, {model: case.chat_model})
    messages: list[Any] = [{"role": "user", "content": "what is the weather in Paris?"}]

    called = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    answer = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == "Echo: sunny, 21 C"


@pytest.mark.parametrize("case", [c for c in CASES if c.profile.vision_models is not None], ids=str)
async def test_image_parts_go_to_vision_models_and_text_models_refuse_them(
    case: Case,
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    vision_models = case.profile.vision_models or frozenset()
    text_model = next(m for m in case.profile.chat_models if m not in vision_models)
    vision, text = alias("vision"), alias("text")
    models = {text: text_model}
    if vision_models:
        models[vision] = sorted(vision_models)[0]
    await sim.channel(pg, secret_key, models)
    look: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "what is this"}]}]
    look[0]["content"].append(IMAGE_PART)

    if vision_models:
        seen = await client.chat.completions.create(model=vision, messages=look)
        assert seen.choices[0].message.content == "Echo: what is this"
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=text, messages=look)
    expected = case.profile.error("image_unsupported", model=text_model)
    assert refused.value.status_code == expected.status
    error = refused.value.response.json()["error"]
    assert expected.message in error["message"]


@pytest.mark.parametrize("case", with_("/embeddings"), ids=str)
async def test_embeddings(
    case: Case,
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    model = alias("embed")
    upstream = case.served("/embeddings")[0]
    await sim.channel(pg, secret_key, {model: upstream})
    result = await client.embeddings.create(model=model, input=["one", "two words"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in result.data)
    assert result.model == upstream
    assert sim.calls[-1]["path"] == case.api_path + "/embeddings"
    ledger = await rows(pg, tenant.token_id, 1)
    assert ledger[0]["prompt_tokens"] == result.usage.prompt_tokens and not ledger[0]["estimated"]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_unknown_model_error_reaches_the_client_openai_shaped(
    case: Case,
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    model = alias("gone")
    await sim.channel(pg, secret_key, {model: "no-such-model"})
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    expected = case.profile.error("model_not_found", model="no-such-model")
    # The provider's own 400/404 is the client's mistake: its status and words pass through.
    assert info.value.status_code == expected.status
    error = info.value.response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert expected.message in error["message"]
    assert error["type"] == "invalid_request_error" or error["type"]
    await rows(pg, tenant.token_id, 1)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_wrong_channel_key_disables_the_channel(
    case: Case,
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(case)
    model = alias("revoked")
    bad_key = "sk-revoked-" + secrets.token_hex(8)
    channel_id = await sim.channel(pg, secret_key, {model: case.chat_model}, key=bad_key)
    hello: list[Any] = [{"role": "user", "content": "hello"}]
    if not case.profile.checks_key:
        # Ollama ignores the key: the channel keeps working and stays enabled.
        reply = await client.chat.completions.create(model=model, messages=hello)
        assert reply.choices[0].message.content == "Echo: hello"
        assert await pg.fetchval("SELECT status FROM channels WHERE id = $1", channel_id) == 1
        return
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=model, messages=hello)
    # Never the client's 401 (xAI even says it with a 400): the channel's key is at fault.
    assert_upstream_auth_failed(failed.value, bad_key)
    reason = await eventually_disabled(pg, channel_id)
    assert "upstream_auth_failed" in reason and bad_key not in reason


async def test_deepseek_reasoning_stream_and_cache_hits_in_the_ledger(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(BY_NAME["deepseek"])
    chat, reasoner = alias("ds-chat"), alias("ds-reasoner")
    await sim.channel(pg, secret_key, {chat: "deepseek-chat", reasoner: "deepseek-reasoner"})
    history: list[Any] = [
        {"role": "system", "content": "You are a careful assistant with a long system prompt."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
    ]

    first = await client.chat.completions.create(
        model=chat, messages=[*history, {"role": "user", "content": "one"}]
    )
    assert first.usage is not None and first.usage.model_extra is not None
    assert first.usage.model_extra["prompt_cache_hit_tokens"] == 0
    second = await client.chat.completions.create(
        model=chat, messages=[*history, {"role": "user", "content": "two"}]
    )
    assert second.usage is not None and second.usage.model_extra is not None
    hit = second.usage.model_extra["prompt_cache_hit_tokens"]
    assert hit > 0

    messages: list[Any] = [*history, {"role": "user", "content": "think this through"}]
    stream = await client.chat.completions.create(model=reasoner, messages=messages, stream=True)
    reasoning, content = "", ""
    async for chunk in stream:
        assert chunk.usage is None  # the client did not ask for usage
        if chunk.choices:
            extra = chunk.choices[0].delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            content += chunk.choices[0].delta.content or ""
    assert reasoning == reasoning_text(messages)
    assert content == "Echo: think this through"

    ledger = await rows(pg, tenant.token_id, 3)
    assert [r["cached_tokens"] for r in ledger] == [0, hit, hit]
    assert [r["estimated"] for r in ledger] == [False, False, False]
    assert ledger[1]["prompt_tokens"] == second.usage.prompt_tokens
    streamed = ledger[2]
    assert streamed["is_stream"] and streamed["upstream_model"] == "deepseek-reasoner"
    assert streamed["completion_tokens"] == count_tokens(content) + count_tokens(reasoning)


async def test_mistral_refuses_fields_outside_its_schema_with_422(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    sim = simulated(BY_NAME["mistral"])
    model = alias("mistral")
    await sim.channel(pg, secret_key, {model: "mistral-small-latest"})
    hello: list[Any] = [{"role": "user", "content": "hi"}]
    # The relay drops only what it added itself (stream_options); a client's own extra
    # field reaches Mistral, whose 422 passes through in readable words.
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await client.chat.completions.create(model=model, messages=hello, user="u-1")
    assert info.value.response.json()["error"]["message"] == "user: Extra inputs are not permitted"
    stream = await client.chat.completions.create(
        model=model, messages=hello, stream=True, stream_options={"include_usage": True}
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "stream_options" not in sim.calls[-1]["body"]


async def test_provider_errors_in_their_own_shapes_become_openai_errors(
    client: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    secret_key: str,
    simulated: Callable[[Case], Simulated],
) -> None:
    # Injected answers the simulators pass through as given: bodies with a string "error"
    # (xAI), a numeric code (OpenRouter, SiliconFlow) and out-of-credit 402s.
    cases = [
        ("xai", 400, {"code": "Client specified an invalid argument", "error": "bad n"}, 400),
        ("siliconflow", 400, {"code": 20015, "message": "bad n", "data": None}, 400),
        ("openrouter", 402, {"error": {"code": 402, "message": "Insufficient credits"}}, 502),
    ]
    for provider, status, body, expected in cases:
        sim = simulated(BY_NAME[provider])
        model = alias(provider)
        await sim.channel(pg, secret_key, {model: BY_NAME[provider].chat_model})
        sim.app.state.fail_next.extend([(status, body)] * 3)
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == expected, provider
        error = info.value.response.json()["error"]
        if expected == 400:
            assert error["message"] == "bad n" and error["type"] == "invalid_request_error"
        else:
            assert error["code"] == "upstream_quota_exhausted"
