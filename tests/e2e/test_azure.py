"""Azure OpenAI channels (type 3) through the gateway with the openai SDK, against the strict
Azure simulator (``unigate_sim.azure``): deployment URLs with ``api-version`` and the v1
layout, the Responses API on both, the ``api-key`` header, content filter annotations and
Azure's errors."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import SIM_KEY, Tenant
from tests.e2e.provider_support import (
    Simulator,
    alias,
    assert_upstream_auth_failed,
    create_mapped_channel,
    ledger_row,
    running,
)
from unigate_relay.providers.compatible.azure import RESPONSES_API_VERSION
from unigate_sim.azure import CONTENT_FILTER_MESSAGE, AzureSimulator, create_azure_app
from unigate_sim.openai import count_tokens

AZURE = 3


class Resource(Simulator):
    """One Azure OpenAI resource (the simulator) on its own port."""

    def __init__(self) -> None:
        super().__init__(create_azure_app({SIM_KEY}))

    @property
    def app(self) -> AzureSimulator:
        app: AzureSimulator = self.server.server.config.app
        return app

    @property
    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.app.state.azure_calls
        return calls


@pytest.fixture
def azure() -> Iterator[Resource]:
    yield from running(Resource())


async def azure_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    resource: Resource,
    models: dict[str, str],
    config: dict[str, object] | None = None,
    key: str = SIM_KEY,
) -> int:
    """A type-3 channel on ``resource`` serving ``models`` (client name → upstream model)."""
    return await create_mapped_channel(
        pg,
        secret_key,
        type=AZURE,
        name="azure",
        key=key,
        base_url=resource.url,
        models=models,
        config=config,
    )


HELLO: list[Any] = [{"role": "user", "content": "hello azure world"}]


async def test_chat_and_streams_with_exact_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-35")
    # The upstream model's dot is dropped for the deployment name (One API's rule).
    await azure_channel(pg, secret_key, azure, {model: "gpt-3.5-turbo"})

    plain = await client.chat.completions.create(model=model, messages=HELLO)
    assert plain.choices[0].message.content == "Echo: hello azure world"
    assert (plain.model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    assert plain.usage is not None
    call = azure.calls[-1]
    assert call["path"] == "/openai/deployments/gpt-35-turbo/chat/completions"
    assert call["api_version"] == "2024-10-21"
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
        False,
    )
    assert first["upstream_model"] == "gpt-3.5-turbo"

    # Without stream_options: the relay asks Azure for usage and strips the usage chunk, but
    # Azure's opening annotation chunk (no choices either) reaches the client untouched.
    stream = await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    assert azure.calls[-1]["body"]["stream_options"] == {"include_usage": True}
    empty = [c for c in chunks if not c.choices]
    assert len(empty) == 1 and empty[0] is chunks[0]
    assert "prompt_filter_results" in (chunks[0].model_extra or {})
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello azure world"
    streamed = await ledger_row(pg, tenant, 2)
    assert streamed["is_stream"] and not streamed["estimated"]
    assert streamed["prompt_tokens"] == plain.usage.prompt_tokens
    assert streamed["completion_tokens"] == count_tokens(text)

    # With stream_options: the client gets the usage chunk, and the ledger agrees with it.
    stream = await client.chat.completions.create(
        model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert [bool(c.choices) for c in chunks].count(False) == 2
    assert chunks[0].usage is None and chunks[-1].usage is not None
    usage = chunks[-1].usage
    third = await ledger_row(pg, tenant, 3)
    assert (third["prompt_tokens"], third["completion_tokens"], third["estimated"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        False,
    )


async def test_old_api_version_streams_without_stream_options(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-old")
    await azure_channel(pg, secret_key, azure, {model: "gpt-4o"}, {"api_version": "2024-02-01"})
    stream = await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hello azure world"
    # That version refuses stream_options, so it was not sent; the tokens were counted.
    assert azure.calls[-1]["api_version"] == "2024-02-01"
    assert "stream_options" not in azure.calls[-1]["body"]
    streamed = await ledger_row(pg, tenant, 1)
    assert streamed["estimated"] and streamed["completion_tokens"] > 0


async def test_tools_round_trip_and_image_part(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-4o")
    await azure_channel(pg, secret_key, azure, {model: "gpt-4o"})
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = await client.chat.completions.create(model=model, messages=messages, tools=tools)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    tool_call = choice.message.tool_calls[0]
    assert tool_call.type == "function" and tool_call.function.name == "get_weather"
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    answered = await client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert answered.choices[0].message.content == "Echo: sunny, 21 C"
    assert azure.calls[-1]["path"] == "/openai/deployments/gpt-4o/chat/completions"

    image: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in this picture"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    seen = await client.chat.completions.create(model=model, messages=image)
    assert seen.choices[0].message.content == "Echo: what is in this picture"
    assert azure.calls[-1]["body"]["messages"] == image
    assert seen.usage is not None
    last = await ledger_row(pg, tenant, 3)
    assert last["prompt_tokens"] == seen.usage.prompt_tokens and not last["estimated"]


async def test_embeddings(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-embed")
    await azure_channel(pg, secret_key, azure, {model: "text-embedding-3-small"})
    result = await client.embeddings.create(model=model, input=["first text", "second text"])
    assert [len(d.embedding) for d in result.data] == [1536, 1536]
    assert azure.calls[-1]["path"] == "/openai/deployments/text-embedding-3-small/embeddings"
    logged = await ledger_row(pg, tenant, 1)
    assert logged["prompt_tokens"] == result.usage.prompt_tokens > 0
    assert not logged["estimated"]


async def test_deployment_names_from_dotted_models_and_config(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    # A dotted client model with no mapping: its deployment is the name without dots.
    dotted = f"gpt-3.5-turbo-{secrets.token_hex(3)}"
    azure.app.state.deployments[dotted.replace(".", "")] = "gpt-3.5-turbo"
    # A newer model whose deployment keeps its own name: the channel's deployments map.
    gpt41 = alias("az-41")
    azure.app.state.deployments["prod-gpt-4.1"] = "gpt-4o"
    await azure_channel(
        pg,
        secret_key,
        azure,
        {dotted: dotted, gpt41: "gpt-4.1"},
        {"api_version": "2025-04-01-preview", "deployments": {"gpt-4.1": "prod-gpt-4.1"}},
    )
    answer = await client.chat.completions.create(model=dotted, messages=HELLO)
    assert answer.choices[0].message.content == "Echo: hello azure world"
    assert azure.calls[-1]["deployment"] == dotted.replace(".", "")
    assert azure.calls[-1]["api_version"] == "2025-04-01-preview"
    answer = await client.chat.completions.create(model=gpt41, messages=HELLO)
    assert answer.choices[0].message.content == "Echo: hello azure world"
    assert azure.calls[-1]["deployment"] == "prod-gpt-4.1"
    first, second = await ledger_row(pg, tenant, 1), await ledger_row(pg, tenant, 2)
    assert first["upstream_model"] == dotted and second["upstream_model"] == "gpt-4.1"


async def test_provider_errors_are_openai_shaped(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-filter")
    await azure_channel(pg, secret_key, azure, {model: "gpt-4o-mini"})
    # Azure's content filter refuses the prompt: a 400 the client can act on, in its words.
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "how to kill a zombie process"}]
        )
    error = refused.value.response.json()["error"]
    assert error["code"] == "content_filter"
    assert error["type"] == "invalid_request_error"
    assert error["message"] == CONTENT_FILTER_MESSAGE
    filtered = await ledger_row(pg, tenant, 1)
    assert filtered["status_code"] == 400 and filtered["quota"] == 0

    # A deployment the resource does not have: Azure's 404 passes through.
    missing = alias("az-missing")
    await azure_channel(pg, secret_key, azure, {missing: "gpt-5-nonexistent"})
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model=missing, messages=HELLO)
    assert not_found.value.response.json()["error"]["code"] == "DeploymentNotFound"

    # Azure refusing the channel's key (its own 401 shape) is never the client's 401.
    wrong = alias("az-wrong-key")
    await azure_channel(pg, secret_key, azure, {wrong: "gpt-4o-mini"}, key="0" * 32)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model=wrong, messages=HELLO)
    assert_upstream_auth_failed(failed.value)
    await ledger_row(pg, tenant, 3)


V1_LAYOUT: dict[str, object] = {"api_layout": "v1"}


async def assert_responses_usage(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant, model: str, first_row: int
) -> None:
    """A Responses API answer and stream through the gateway, each with exact ledger usage."""
    answer = await client.responses.create(model=model, input="answer me, azure")
    assert answer.output_text == "Echo: answer me, azure"
    assert answer.usage is not None
    plain = await ledger_row(pg, tenant, first_row)
    assert (
        plain["prompt_tokens"],
        plain["completion_tokens"],
        plain["cached_tokens"],
        plain["estimated"],
    ) == (
        answer.usage.input_tokens,
        answer.usage.output_tokens,
        answer.usage.input_tokens_details.cached_tokens,
        False,
    )
    events = [
        e
        async for e in await client.responses.create(
            model=model, input="stream, azure", stream=True
        )
    ]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: stream, azure"
    final = events[-1]
    assert final.type == "response.completed" and final.response.usage is not None
    usage = final.response.usage
    streamed = await ledger_row(pg, tenant, first_row + 1)
    assert streamed["is_stream"] and streamed["status_code"] == 200
    assert (
        streamed["prompt_tokens"],
        streamed["completion_tokens"],
        streamed["cached_tokens"],
        streamed["estimated"],
    ) == (usage.input_tokens, usage.output_tokens, usage.input_tokens_details.cached_tokens, False)


async def test_v1_layout_chat_and_responses_with_exact_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model, gpt41 = alias("az-v1"), alias("az-v1-41")
    azure.app.state.deployments["prod-gpt-4.1"] = "gpt-4o"
    await azure_channel(
        pg,
        secret_key,
        azure,
        {model: "gpt-3.5-turbo", gpt41: "gpt-4.1"},
        {**V1_LAYOUT, "deployments": {"gpt-4.1": "prod-gpt-4.1"}},
    )

    plain = await client.chat.completions.create(model=model, messages=HELLO)
    assert plain.choices[0].message.content == "Echo: hello azure world"
    assert plain.usage is not None
    call = azure.calls[-1]
    # OpenAI's paths under /openai/v1, no api-version, the deployment (dots dropped) as model.
    assert (call["path"], call["api_version"]) == ("/openai/v1/chat/completions", "")
    assert call["deployment"] == call["body"]["model"] == "gpt-35-turbo"
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
        False,
    )
    assert first["upstream_model"] == "gpt-3.5-turbo"

    stream = await client.chat.completions.create(model=gpt41, messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    assert azure.calls[-1]["body"]["model"] == "prod-gpt-4.1"
    assert azure.calls[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello azure world"
    streamed = await ledger_row(pg, tenant, 2)
    assert streamed["is_stream"] and not streamed["estimated"]
    assert streamed["prompt_tokens"] == plain.usage.prompt_tokens
    assert streamed["completion_tokens"] == count_tokens(text)
    assert streamed["upstream_model"] == "gpt-4.1"

    await assert_responses_usage(client, pg, tenant, gpt41, 3)
    call = azure.calls[-1]
    assert (call["path"], call["api_version"]) == ("/openai/v1/responses", "")
    assert call["body"]["model"] == "prod-gpt-4.1"


async def test_v1_layout_unknown_deployment_is_azures_404(
    client: openai.AsyncOpenAI, secret_key: str, pg: asyncpg.Pool, azure: Resource
) -> None:
    missing = alias("az-v1-missing")
    await azure_channel(pg, secret_key, azure, {missing: "gpt-5-nonexistent"}, V1_LAYOUT)
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.responses.create(model=missing, input="hello")
    assert not_found.value.response.json()["error"]["code"] == "DeploymentNotFound"


async def test_responses_on_the_classic_layout(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, azure: Resource
) -> None:
    model = alias("az-resp")
    # The channel's GA version has no Responses API: that endpoint gets the preview default.
    await azure_channel(pg, secret_key, azure, {model: "gpt-4o"})
    await assert_responses_usage(client, pg, tenant, model, 1)
    call = azure.calls[-1]
    assert (call["path"], call["api_version"]) == ("/openai/responses", RESPONSES_API_VERSION)
    assert call["deployment"] == call["body"]["model"] == "gpt-4o"
    # Chat on the same channel still goes to its deployment with the channel's version.
    await client.chat.completions.create(model=model, messages=HELLO)
    chat = azure.calls[-1]
    assert (chat["path"], chat["api_version"]) == (
        "/openai/deployments/gpt-4o/chat/completions",
        "2024-10-21",
    )


async def test_endpoints_azure_does_not_serve_are_refused_before_any_call(
    client: openai.AsyncOpenAI, secret_key: str, pg: asyncpg.Pool, azure: Resource
) -> None:
    model = alias("az-mod")
    await azure_channel(pg, secret_key, azure, {model: "omni-moderation-latest"})
    with pytest.raises(openai.BadRequestError) as refused:
        await client.moderations.create(model=model, input="hello")
    assert refused.value.response.json()["error"]["code"] == "unsupported_endpoint"
    assert azure.calls == []
