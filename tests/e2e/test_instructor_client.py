"""instructor through the gateway: ``instructor.from_openai(AsyncOpenAI(base_url=gateway))``
extracting a nested pydantic model in ``TOOLS`` mode (a forced function) and ``JSON_SCHEMA``
mode (``response_format``) over an OpenAI, an Anthropic and a Gemini channel, and
``instructor.from_anthropic(AsyncAnthropic(base_url=gateway))`` on ``/v1/messages``; each
against its strict simulator.

instructor's retry path: the provider first answers an object that fails validation (a
scripted answer, queued on the simulator's ``fail_next`` as a 200 in the provider's own
shape, with the usage it reports), instructor sends the validation error back (a tool
result under a forced tool choice, or a user message) and the simulated model answers again,
validly. Both calls are billed, each exactly at the usage its provider reported."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import asyncpg
import instructor
import openai
import orjson
import pydantic
import pytest
from instructor.core.exceptions import InstructorRetryException

from tests.e2e.conftest import Tenant, ThreadedServer
from tests.e2e.provider_support import Simulator, alias, create_mapped_channel, ledger_rows
from tests.e2e.test_anthropic import (
    CLAUDE_KEY,
    SONNET,
    Claude,
    claude,
    claude_channel,
    warm_stack,
)
from tests.e2e.test_structured_outputs import FAMILIES, Family, _simulator
from unigate_cli.devstack import Stack

__all__ = ["claude", "warm_stack"]  # fixtures used here


class Address(pydantic.BaseModel):
    city: str
    zip_code: int


class Person(pydantic.BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int = pydantic.Field(ge=0)
    home: Address
    tags: list[str]


PROMPT: Any = [
    {"role": "system", "content": "Extract the person from the text."},
    {"role": "user", "content": "Ada Lovelace, 36, lives at 12 St James's Square, London."},
]
# What the provider first answers on the retry tests: an age below Person's bound.
INVALID = {"name": "Ada", "age": -36, "home": {"city": "London", "zip_code": 1}, "tags": []}
# The usage the scripted answer reports (the ledger must bill exactly these).
SCRIPTED_USAGE = (57, 21)

CHANNELS = [f for f in FAMILIES if f.name in ("openai", "anthropic", "gemini")]
(ANTHROPIC,) = (f for f in FAMILIES if f.name == "anthropic")


@dataclass
class Served:
    family: Family
    model: str
    # The simulator's state (``fail_next``, ``calls``), whichever serves the family.
    state: Any


@pytest.fixture(params=CHANNELS, ids=str)
async def served(
    request: pytest.FixtureRequest,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    stack: Stack,
) -> AsyncIterator[Served]:
    family: Family = request.param
    sim: Simulator | None = _simulator(family)
    model = alias(f"instructor-{family.name}")
    await create_mapped_channel(
        pg,
        secret_key,
        type=family.channel_type,
        name=f"instructor-{family.name}",
        key=family.key,
        base_url=sim.url if sim is not None else simulator.url,
        models={model: family.upstream},
    )
    state = sim.state if sim is not None else simulator.server.config.app.state
    if sim is None:
        state.calls.clear()
    try:
        if family.name == "gemini":
            state = state.sim  # the Gemini simulator keeps its lists one level down
        yield Served(family, model, state)
    finally:
        if sim is not None:
            sim.stop()
        else:
            state.fail_next.clear()


def openai_sdk(stack: Stack, tenant: Tenant) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )


def scripted_call(family: Family, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The provider's answer (in its own protocol) calling ``name`` with ``arguments``, the
    usage :data:`SCRIPTED_USAGE`."""
    prompt, completion = SCRIPTED_USAGE
    if family.name == "anthropic":
        return {
            "id": "msg_01Scripted" + "x" * 12,
            "type": "message",
            "role": "assistant",
            "model": family.upstream,
            "content": [
                {"type": "tool_use", "id": "toolu_01Scripted", "name": name, "input": arguments}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt,
                "output_tokens": completion,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
    if family.name == "gemini":
        return {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"name": name, "args": arguments}}],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "candidatesTokenCount": completion,
                "totalTokenCount": prompt + completion,
            },
            "modelVersion": family.upstream,
            "responseId": "scripted-answer",
        }
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": family.upstream,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_scripted",
                            "type": "function",
                            "function": {
                                "name": name,
                                "arguments": orjson.dumps(arguments).decode(),
                            },
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def assert_person(person: Person) -> None:
    assert isinstance(person, Person) and isinstance(person.home, Address)
    assert person.age == 1 and person.home.zip_code == 1  # the simulated model's integers


async def assert_billed_as_reported(
    pg: asyncpg.Pool, tenant: Tenant, usages: list[tuple[int, int]]
) -> None:
    rows = await ledger_rows(pg, tenant, len(usages))
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows] == usages
    assert all(not r["estimated"] and r["status_code"] == 200 for r in rows)


@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA], ids=str)
async def test_from_openai_extracts_the_model(
    served: Served, stack: Stack, tenant: Tenant, pg: asyncpg.Pool, mode: instructor.Mode
) -> None:
    client = instructor.from_openai(openai_sdk(stack, tenant), mode=mode)
    person, completion = await client.chat.completions.create_with_completion(
        model=served.model, messages=PROMPT, response_model=Person, max_retries=0
    )
    assert_person(person)
    sent = served.state.calls[-1]["body"]
    if served.family.name == "openai":
        # Passed through as instructor asked.
        if mode == instructor.Mode.TOOLS:
            assert sent["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
        else:
            assert sent["response_format"]["type"] == "json_schema"
    assert completion.usage is not None
    await assert_billed_as_reported(
        pg, tenant, [(completion.usage.prompt_tokens, completion.usage.completion_tokens)]
    )


async def test_from_openai_retries_an_invalid_object(
    served: Served, stack: Stack, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    served.state.fail_next.append((200, scripted_call(served.family, "Person", INVALID)))
    client = instructor.from_openai(openai_sdk(stack, tenant), mode=instructor.Mode.TOOLS)
    person, completion = await client.chat.completions.create_with_completion(
        model=served.model, messages=PROMPT, response_model=Person, max_retries=1
    )
    assert_person(person)
    assert len(served.state.calls) == 2
    # The second call carried the validation error back to the model.
    retried = str(served.state.calls[-1]["body"])
    assert "greater than or equal to 0" in retried
    # instructor hands back the usage of every attempt added up: the ledger's two rows are
    # the scripted answer's usage and the rest.
    assert completion.usage is not None
    total = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    await assert_billed_as_reported(
        pg, tenant, [SCRIPTED_USAGE, (total[0] - SCRIPTED_USAGE[0], total[1] - SCRIPTED_USAGE[1])]
    )


async def test_from_openai_gives_up_after_its_retries(
    served: Served, stack: Stack, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    """Invalid every time: instructor raises its retry exception after max_retries, and every
    call is still billed as reported."""
    for _ in range(2):
        served.state.fail_next.append((200, scripted_call(served.family, "Person", INVALID)))
    client = instructor.from_openai(openai_sdk(stack, tenant), mode=instructor.Mode.TOOLS)
    with pytest.raises(InstructorRetryException) as gave_up:
        # One retry: two attempts in all.
        await client.chat.completions.create(
            model=served.model, messages=PROMPT, response_model=Person, max_retries=1
        )
    assert gave_up.value.n_attempts == 2
    assert "greater than or equal to 0" in str(gave_up.value)
    await assert_billed_as_reported(pg, tenant, [SCRIPTED_USAGE, SCRIPTED_USAGE])


def anthropic_sdk(stack: Stack, tenant: Tenant) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=stack.gateway_url, api_key=tenant.key, max_retries=0, timeout=60
    )


async def test_from_anthropic_on_the_messages_route(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("instructor-claude")
    await claude_channel(pg, secret_key, claude, model)
    client = instructor.from_anthropic(anthropic_sdk(stack, tenant), mode=instructor.Mode.TOOLS)
    system, user = PROMPT

    async def extract(max_retries: int) -> tuple[Person, anthropic.types.Message]:
        return await client.messages.create_with_completion(
            model=model,
            system=system["content"],
            messages=[user],
            max_tokens=1024,
            response_model=Person,
            max_retries=max_retries,
        )

    person, message = await extract(max_retries=0)
    assert_person(person)
    sent = claude.calls[-1]["body"]
    assert sent["tool_choice"]["name"] == "Person" and sent["model"] == SONNET
    first = (message.usage.input_tokens, message.usage.output_tokens)

    # The retry path: an invalid tool input first, then the error as a tool_result.
    invalid = scripted_call(ANTHROPIC, "Person", INVALID)
    claude.app.state.fail_next.append((200, invalid))
    person, message = await extract(max_retries=1)
    assert_person(person)
    results = [
        block
        for turn in claude.calls[-1]["body"]["messages"]
        if isinstance(turn["content"], list)
        for block in turn["content"]
        if block["type"] == "tool_result"
    ]
    assert len(results) == 1 and results[0]["tool_use_id"] == "toolu_01Scripted"
    assert CLAUDE_KEY not in str(results)
    # The usage of both attempts added up, as instructor reports it.
    total = (message.usage.input_tokens, message.usage.output_tokens)
    again = (total[0] - SCRIPTED_USAGE[0], total[1] - SCRIPTED_USAGE[1])
    await assert_billed_as_reported(pg, tenant, [first, SCRIPTED_USAGE, again])
