"""LiteLLM used as a client of the gateway, as applications that route through it call us:
``litellm.acompletion`` with its ``openai/`` provider and ``api_base`` the gateway's
``/v1`` (plain, streamed with ``stream_options.include_usage``, tools, a pydantic
``response_format``) over an OpenAI, an Anthropic and a Gemini channel, each against its
strict simulator; its ``anthropic/`` provider pointed at the gateway's ``/v1/messages``;
``litellm.aembedding``; and the client's mistakes (a bad key, an unknown model, a key out of
quota, a malformed request) raised as LiteLLM's own exception classes, which it picks from
the status and the error body, so they prove the error shapes. Every ledger row is the
usage the client was given. LiteLLM runs offline (``offline_clients``): no cost-map fetch,
and no host but the loopback looked up during a test."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from tests import admin_writes
from tests.e2e.conftest import Tenant, ThreadedServer
from tests.e2e.offline_clients import litellm, loopback_only
from tests.e2e.provider_support import WEATHER_TOOL, alias, ledger_row
from tests.e2e.test_anthropic import Claude, claude, claude_channel, openai_channel, warm_stack
from tests.e2e.test_structured_outputs import FAMILIES, PROMPT, Address, Person, Served, served
from unigate_cli.devstack import Stack

__all__ = ["claude", "loopback_only", "served", "warm_stack"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("loopback_only")

# OpenAI, Anthropic and Gemini channels (the structured-output families but DeepSeek).
CHANNELS = [f for f in FAMILIES if f.name in ("openai", "anthropic", "gemini")]


def via_openai(stack: Stack, key: str) -> dict[str, Any]:
    """What a LiteLLM caller passes to reach the gateway as an OpenAI-compatible server."""
    return {"api_base": stack.gateway_url + "/v1", "api_key": key, "max_retries": 0, "timeout": 60}


def usage_pair(usage: Any) -> tuple[int, int]:
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens


async def assert_ledger(pg: asyncpg.Pool, tenant: Tenant, n: int, usage: Any, stream: bool) -> None:
    """The tenant's ``n``-th ledger row is exactly the usage LiteLLM handed its caller."""
    row = await ledger_row(pg, tenant, n)
    assert (row["prompt_tokens"], row["completion_tokens"]) == usage_pair(usage)
    assert not row["estimated"] and row["status_code"] == 200 and row["quota"] > 0
    assert row["is_stream"] is stream


HELLO: Any = [{"role": "user", "content": "hello litellm"}]


async def stream_hello(
    model: str, to_gateway: dict[str, Any]
) -> tuple[str, list[str | None], list[Any]]:
    """HELLO streamed with ``include_usage``: the text, the finish reasons and the usages of
    the chunks that carry one."""
    stream = await litellm.acompletion(
        model=model,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        **to_gateway,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    reported = [u for c in chunks if (u := getattr(c, "usage", None)) and u.total_tokens]
    return text, finishes, reported


@pytest.mark.parametrize("served", CHANNELS, ids=str, indirect=True)
async def test_acompletion_plain_stream_tools_and_json_schema(
    served: Served, stack: Stack, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    model = "openai/" + served.model
    to_gateway = via_openai(stack, tenant.key)

    plain = await litellm.acompletion(model=model, messages=HELLO, **to_gateway)
    assert plain.choices[0].message.content == "Echo: hello litellm"
    assert plain.choices[0].finish_reason == "stop"
    await assert_ledger(pg, tenant, 1, plain.usage, stream=False)

    text, finishes, reported = await stream_hello(model, to_gateway)
    assert text == "Echo: hello litellm" and finishes[-1] == "stop"
    assert len(reported) == 1, reported  # one usage chunk, as include_usage asks
    assert usage_pair(reported[0]) == usage_pair(plain.usage)
    await assert_ledger(pg, tenant, 2, reported[0], stream=True)

    asked: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    called = await litellm.acompletion(
        model=model, messages=asked, tools=[WEATHER_TOOL], **to_gateway
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    assert set(json.loads(call.function.arguments)) == {"city"}
    await assert_ledger(pg, tenant, 3, called.usage, stream=False)

    # The tool's result sent back: the model answers from it.
    answered = await litellm.acompletion(
        model=model,
        messages=[
            *asked,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ],
        tools=[WEATHER_TOOL],
        **to_gateway,
    )
    assert answered.choices[0].message.content == "Echo: sunny, 21 C"
    await assert_ledger(pg, tenant, 4, answered.usage, stream=False)

    shaped = await litellm.acompletion(
        model=model, messages=PROMPT, response_format=Person, **to_gateway
    )
    person = Person.model_validate_json(shaped.choices[0].message.content)
    assert person.home.zip_code == 1  # the simulated model's integer
    await assert_ledger(pg, tenant, 5, shaped.usage, stream=False)

    # A streamed tool call, put back together by LiteLLM's own chunk builder: the call's id
    # and name must open it and its argument pieces add up to JSON.
    streamed = await litellm.acompletion(
        model=model,
        messages=asked,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
        **to_gateway,
    )
    pieces = [chunk async for chunk in streamed]
    rebuilt = litellm.stream_chunk_builder(pieces, messages=asked)
    assert rebuilt is not None
    assert rebuilt.choices[0].finish_reason == "tool_calls"
    (whole,) = rebuilt.choices[0].message.tool_calls
    assert whole.function.name == "get_weather" and whole.id
    assert json.loads(whole.function.arguments) == json.loads(call.function.arguments)
    await assert_ledger(pg, tenant, 6, rebuilt.usage, stream=True)


async def test_anthropic_provider_on_the_messages_route(
    stack: Stack,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    claude: Claude,
    simulator: ThreadedServer,
) -> None:
    """LiteLLM's ``anthropic/`` provider with ``api_base`` the gateway: it posts to
    ``/v1/messages`` with ``x-api-key``, natively on a Claude channel and translated on an
    OpenAI one."""
    on_claude, on_openai = alias("claude"), alias("gpt")
    await claude_channel(pg, secret_key, claude, on_claude)
    await openai_channel(pg, secret_key, simulator, on_openai)
    n = 0
    for model in (on_claude, on_openai):
        to_gateway: dict[str, Any] = {
            "api_base": stack.gateway_url,
            "api_key": tenant.key,
            "max_retries": 0,
            "timeout": 60,
            "max_tokens": 1000,
        }
        plain = await litellm.acompletion(model="anthropic/" + model, messages=HELLO, **to_gateway)
        assert plain.choices[0].message.content == "Echo: hello litellm"
        assert plain.choices[0].finish_reason == "stop"
        n += 1
        await assert_ledger(pg, tenant, n, plain.usage, stream=False)

        text, finishes, reported = await stream_hello("anthropic/" + model, to_gateway)
        assert text == "Echo: hello litellm" and finishes[-1] == "stop"
        assert reported and usage_pair(reported[-1]) == usage_pair(plain.usage)
        n += 1
        await assert_ledger(pg, tenant, n, reported[-1], stream=True)

        asked: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
        called = await litellm.acompletion(
            model="anthropic/" + model, messages=asked, tools=[WEATHER_TOOL], **to_gateway
        )
        (call,) = called.choices[0].message.tool_calls
        assert call.function.name == "get_weather"
        assert called.choices[0].finish_reason == "tool_calls"
        n += 1
        await assert_ledger(pg, tenant, n, called.usage, stream=False)

        # LiteLLM asks Claude for a response_format with a forced tool of its own, and reads
        # the tool's input back as the message content. A flat model: LiteLLM 1.110 sends a
        # nested model's `$ref` as "/$defs/Address", without its "#", which no JSON Schema
        # reader (the simulated Claude's included) resolves.
        shaped = await litellm.acompletion(
            model="anthropic/" + model, messages=PROMPT, response_format=Address, **to_gateway
        )
        assert Address.model_validate_json(shaped.choices[0].message.content).zip_code == 1
        n += 1
        await assert_ledger(pg, tenant, n, shaped.usage, stream=False)
    assert claude.calls[0]["path"] == "/v1/messages"


async def test_aembedding(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    embedded = await litellm.aembedding(
        model="openai/text-embedding-3-small",
        input=["the quick brown fox", "jumps"],
        **via_openai(stack, tenant.key),
    )
    assert [d["index"] for d in embedded.data] == [0, 1]
    assert all(len(d["embedding"]) == 1536 for d in embedded.data)
    assert sim_app.state.calls[-1]["path"] == "/v1/embeddings"
    row = await ledger_row(pg, tenant, 1)
    assert embedded.usage is not None
    assert row["prompt_tokens"] == embedded.usage.prompt_tokens > 0
    assert row["completion_tokens"] == 0 and not row["estimated"]


async def test_client_mistakes_raise_litellm_exception_classes(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    for provider, base in (("openai", stack.gateway_url + "/v1"), ("anthropic", stack.gateway_url)):
        common: dict[str, Any] = {"api_base": base, "max_retries": 0, "timeout": 60}
        if provider == "anthropic":
            common["max_tokens"] = 50
        model = f"{provider}/gpt-4o-mini"

        with pytest.raises(litellm.AuthenticationError) as bad_key:
            await litellm.acompletion(
                model=model, messages=HELLO, api_key="sk-" + "x" * 48, **common
            )
        assert bad_key.value.status_code == 401

        with pytest.raises(litellm.NotFoundError) as unknown:
            await litellm.acompletion(
                model=f"{provider}/no-such-model", messages=HELLO, api_key=tenant.key, **common
            )
        assert unknown.value.status_code == 404
        assert "no-such-model" in str(unknown.value)

        # A message the provider (or the relay's translation) refuses: its 400, passed on.
        with pytest.raises(litellm.BadRequestError) as malformed:
            await litellm.acompletion(
                model=model,
                messages=[{"role": "wizard", "content": "hi"}],
                api_key=tenant.key,
                **common,
            )
        assert malformed.value.status_code == 400
        assert "wizard" in str(malformed.value)
        sim_app.state.calls.clear()

        spent = await admin_writes.create_token(
            pg, user_id=1, name="spent", remain_quota=0, unlimited_quota=False
        )
        # unigate refuses a spent key with 403 `insufficient_quota`, as One API does. LiteLLM's
        # anthropic provider calls any 403 PermissionDeniedError; its openai provider has no
        # class for a 403 and raises its generic APIError, with the status and our message.
        over_quota = litellm.PermissionDeniedError if provider == "anthropic" else litellm.APIError
        with pytest.raises(over_quota) as no_quota:
            await litellm.acompletion(model=model, messages=HELLO, api_key=spent.key, **common)
        assert no_quota.value.status_code == 403
        assert "does not have enough quota left" in str(no_quota.value)
        # The key's and the model's refusals came before any provider was called.
        assert sim_app.state.calls == []
