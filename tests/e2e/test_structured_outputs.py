"""Structured outputs (``response_format``) on every family that can express them, with the
clients people use for them: the ``openai`` SDK's ``chat.completions.parse`` and ``.stream``
with a pydantic model, and LangChain's ``ChatOpenAI.with_structured_output`` (JSON schema and
JSON mode). Over an OpenAI channel (passed through), an Anthropic one (a forced tool), a
Gemini one (``responseSchema``) and DeepSeek (JSON mode only: ``json_object`` with the schema
in the prompt), each against its strict simulator, which honours the tool choice, the
response schema or JSON mode as the real API does. The ledger row of every call is the
provider's usage, which the client saw too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import openai
import pydantic
import pytest
from langchain_openai import ChatOpenAI

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import Simulator, alias, create_mapped_channel, ledger_rows
from tests.e2e.test_anthropic import CLAUDE_KEY, SONNET
from tests.e2e.test_bedrock import Bedrock, bedrock, bedrock_channel
from tests.e2e.test_gemini import KEY as GEMINI_KEY
from tests.e2e.test_hunyuan import Tencent, tencent
from tests.e2e.test_hunyuan import channel as hunyuan_channel
from tests.e2e.test_vertex import Vertex, vertex, vertex_channel
from unigate_cli.devstack import Stack
from unigate_sim.anthropic import create_anthropic_app
from unigate_sim.compatible import create_compatible_app
from unigate_sim.gemini import create_gemini_app

__all__ = ["bedrock", "tencent", "vertex"]  # fixtures used here


class Address(pydantic.BaseModel):
    city: str
    zip_code: int


class Person(pydantic.BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int
    home: Address
    tags: list[str]


@dataclass(frozen=True)
class Family:
    name: str
    channel_type: int
    key: str
    upstream: str
    base_path: str = ""

    def __str__(self) -> str:
        return self.name


FAMILIES = [
    Family("openai", 1, SIM_KEY, "gpt-4o-mini"),
    Family("anthropic", 14, CLAUDE_KEY, SONNET),
    Family("gemini", 24, GEMINI_KEY, "gemini-2.5-flash"),
    Family("deepseek", 36, SIM_KEY, "deepseek-chat"),
]


def _simulator(family: Family) -> Simulator | None:
    """The family's own simulator (None: the session's OpenAI simulator serves it)."""
    if family.name == "anthropic":
        return Simulator(create_anthropic_app({CLAUDE_KEY}))
    if family.name == "gemini":
        return Simulator(create_gemini_app({GEMINI_KEY}))
    if family.name == "deepseek":
        return Simulator(create_compatible_app("deepseek", {SIM_KEY}))
    return None


@dataclass
class Served:
    model: str
    sim: Simulator | None


@pytest.fixture(params=FAMILIES, ids=str)
async def served(
    request: pytest.FixtureRequest,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    tenant: Tenant,
) -> AsyncIterator[Served]:
    family: Family = request.param
    sim = _simulator(family)
    model = alias(family.name)
    await create_mapped_channel(
        pg,
        secret_key,
        type=family.channel_type,
        name=f"structured-{family.name}",
        key=family.key,
        base_url=(sim.url if sim is not None else simulator.url) + family.base_path,
        models={model: family.upstream},
    )
    try:
        yield Served(model, sim)
    finally:
        if sim is not None:
            sim.stop()


PROMPT: Any = [
    {"role": "system", "content": "Extract the person from the text."},
    {"role": "user", "content": "Ada Lovelace, 36, lives at 12 St James's Square, London."},
]


async def test_openai_sdk_parse_and_stream_return_the_pydantic_object(
    served: Served, client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    parsed = await client.chat.completions.parse(
        model=served.model, messages=PROMPT, response_format=Person
    )
    choice = parsed.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    person = choice.message.parsed
    assert isinstance(person, Person) and isinstance(person.home, Address)

    async with client.chat.completions.stream(
        model=served.model,
        messages=PROMPT,
        response_format=Person,
        stream_options={"include_usage": True},
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    assert final.choices[0].message.parsed == person
    assert final.choices[0].finish_reason == "stop"

    rows = await ledger_rows(pg, tenant, 2)
    for row, answer in zip(rows, (parsed, final), strict=True):
        assert answer.usage is not None and not row["estimated"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            answer.usage.prompt_tokens,
            answer.usage.completion_tokens,
        )


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
async def test_langchain_with_structured_output(
    served: Served, stack: Stack, tenant: Tenant, method: str
) -> None:
    llm = ChatOpenAI(
        model=served.model,
        api_key=tenant.key,  # type: ignore[arg-type]
        base_url=stack.gateway_url + "/v1",
        max_retries=0,
        timeout=60,
    )
    if method == "json_schema":
        person = await llm.with_structured_output(Person, method="json_schema").ainvoke(PROMPT)
        assert isinstance(person, Person)
    else:
        # JSON mode: any JSON object (the prompt must say "json", as OpenAI requires).
        asked = [*PROMPT, {"role": "user", "content": "Answer in json."}]
        answer = await llm.with_structured_output(method="json_mode").ainvoke(asked)
        assert isinstance(answer, dict)


async def test_schemas_a_provider_cannot_express_get_a_clear_400(
    served: Served, client: openai.AsyncOpenAI
) -> None:
    class Tree(pydantic.BaseModel):
        label: str
        children: list[Tree]

    if served.model.startswith("gemini"):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.parse(
                model=served.model, messages=PROMPT, response_format=Tree
            )
        assert "recursive" in refused.value.message
    elif served.model.startswith("anthropic"):
        array = {
            "type": "json_schema",
            "json_schema": {"name": "xs", "schema": {"type": "array", "items": {"type": "string"}}},
        }
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model=served.model, messages=PROMPT, response_format=array
            )
        assert "JSON object" in refused.value.message
    else:
        pytest.skip("the OpenAI-like families take any schema (the provider's own rules)")


async def _parse_and_stream(client: openai.AsyncOpenAI, model: str) -> Person:
    parsed = await client.chat.completions.parse(
        model=model, messages=PROMPT, response_format=Person
    )
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person) and parsed.choices[0].finish_reason == "stop"
    async with client.chat.completions.stream(
        model=model, messages=PROMPT, response_format=Person
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.parsed == person
    return person


async def test_claude_on_bedrock_and_vertex_and_gemini_on_vertex(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock, vertex: Vertex
) -> None:
    on_bedrock = alias("bedrock")
    await bedrock_channel(pg, secret_key, bedrock, on_bedrock)
    await _parse_and_stream(client, on_bedrock)
    # Claude was asked through the forced response tool.
    sent = bedrock.calls[-1]["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_tool_call"}

    for upstream in ("claude-sonnet-4-20250514", "gemini-2.5-flash"):
        await _parse_and_stream(client, await vertex_channel(pg, secret_key, vertex, upstream))


async def test_a_family_without_structured_output_refuses_it_with_a_400(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, tencent: Tencent
) -> None:
    model = alias("hunyuan")
    await hunyuan_channel(pg, secret_key, tencent, {model: "hunyuan-lite"})
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.parse(model=model, messages=PROMPT, response_format=Person)
    error = refused.value.response.json()["error"]
    assert error["code"] == "unsupported_response_format"
    assert "json_schema" in error["message"]
    # Refused before the provider was called; plain text still goes.
    assert tencent.state.calls == []
    plain = await client.chat.completions.create(
        model=model, messages=PROMPT, response_format={"type": "text"}
    )
    assert plain.choices[0].message.content
