"""Claude on AWS Bedrock (channel type 33) through the gateway with the openai SDK, against
the Bedrock simulator (``unigate_sim.bedrock``), which recomputes every request's SigV4
signature and speaks AWS's binary event stream: chat and streams with the system prompt in
``system``, a tool call round trip, usage in the ledger equal to what the simulator reported,
throttling (a 429 for the client, another channel taking over) and a refused secret
disabling the channel."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    WEATHER_TOOL,
    Simulator,
    alias,
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
    running,
)
from unigate_sim.bedrock import BedrockError, StreamException, create_bedrock_app

BEDROCK = 33
REGION = "eu-west-3"
SONNET = "claude-3-5-sonnet-20241022"
SONNET_ID = "anthropic.claude-3-5-sonnet-20241022-v2%3A0"
HELLO: list[Any] = [{"role": "user", "content": "hello bedrock"}]


class Bedrock(Simulator):
    """The Bedrock runtime simulator of ``REGION`` with one IAM access key."""

    def __init__(self) -> None:
        self.akid = "AKIA" + secrets.token_hex(8).upper()
        self.secret = secrets.token_urlsafe(30)
        super().__init__(create_bedrock_app({self.akid: self.secret}, region=REGION))

    @property
    def key(self) -> str:
        return f"{self.akid}|{self.secret}"


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    yield from running(Bedrock())


@pytest.fixture
def backup() -> Iterator[Bedrock]:
    yield from running(Bedrock())


async def bedrock_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Bedrock,
    model: str,
    *,
    upstream: str = SONNET,
    key: str | None = None,
    priority: int = 0,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=BEDROCK,
        name="bedrock",
        key=key or sim.key,
        base_url=sim.url,
        models={model: upstream},
        config={"region": REGION},
        priority=priority,
    )


def reported(call: dict[str, Any]) -> tuple[int, int]:
    """The (prompt, completion) tokens of the simulator's usage for one call."""
    usage = call["usage"]
    prompt = (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )
    return prompt, usage["output_tokens"]


async def test_chat_and_stream_signed_with_system_and_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock
) -> None:
    model = alias("bedrock")
    await bedrock_channel(pg, secret_key, bedrock, model)
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, *HELLO]
    answer = await client.chat.completions.create(model=model, messages=messages)
    assert answer.choices[0].message.content == "Echo: hello bedrock"
    assert answer.choices[0].finish_reason == "stop" and answer.model == SONNET
    call = bedrock.calls[-1]
    assert call["path"] == f"/model/{SONNET_ID}/invoke"
    assert call["status"] == 200
    assert call["headers"]["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={bedrock.akid}/"
    )
    assert f"/{REGION}/bedrock/aws4_request" in call["headers"]["authorization"]
    sent = call["body"]
    assert sent["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in sent and "stream" not in sent
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello bedrock"}]}
    ]
    assert sent["max_tokens"] == 8192  # Claude 3.5 Sonnet's limit: the client sent none
    first = await ledger_row(pg, tenant, 1)
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == reported(call)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        *reported(call),
        False,
    )
    assert first["upstream_model"] == SONNET

    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello bedrock"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    streamed_call = bedrock.calls[-1]
    assert streamed_call["path"] == f"/model/{SONNET_ID}/invoke-with-response-stream"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == reported(streamed_call)
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        *reported(streamed_call),
        False,
    )
    assert second["is_stream"]

    # A Bedrock id given by the model mapping (an inference profile) goes as it is.
    profile = alias("bedrock-profile")
    await bedrock_channel(
        pg, secret_key, bedrock, profile, upstream="us.anthropic.claude-sonnet-4-20250514-v1:0"
    )
    short = await client.chat.completions.create(model=profile, messages=HELLO, max_tokens=2)
    assert short.choices[0].finish_reason == "length"
    assert bedrock.calls[-1]["path"] == (
        "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke"
    )


async def test_tool_call_round_trip(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, bedrock: Bedrock
) -> None:
    model = alias("bedrock-tools")
    await bedrock_channel(pg, secret_key, bedrock, model)
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL]
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert set(orjson.loads(tool_call.function.arguments)) == {"city"}
    assert bedrock.calls[-1]["body"]["tools"][0]["input_schema"]["required"] == ["city"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    stream = await client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: sunny, 21 C"
    turns = bedrock.calls[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0] == {
        "type": "tool_use",
        "id": tool_call.id,
        "name": "get_weather",
        "input": orjson.loads(tool_call.function.arguments),
    }
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": tool_call.id, "content": "sunny, 21 C"}
    ]
    streamed = await ledger_row(pg, tenant, 2)
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == reported(bedrock.calls[-1])


async def test_throttling_failover_and_refused_secret(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    bedrock: Bedrock,
    backup: Bedrock,
) -> None:
    model = alias("bedrock-throttled")
    await bedrock_channel(pg, secret_key, bedrock, model)
    bedrock.state.fail_next.append(
        BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")
    )
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model=model, messages=HELLO)
    error = limited.value.response.json()["error"]
    assert error["message"] == "Too many requests, please wait before trying again."
    assert error["type"] == "rate_limit_error"
    assert bedrock.calls[-1]["status"] == 429

    # Throttled mid-stream: the client's stream ends with an OpenAI-shaped error event.
    bedrock.state.stream_exceptions.append(
        StreamException(after=5, kind="throttlingException", message="Slow down")
    )
    async with httpx.AsyncClient(timeout=30) as raw:
        response = await raw.post(
            str(client.base_url) + "chat/completions",
            json={"model": model, "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {tenant.key}"},
        )
    frames = [f for f in response.content.decode().split("\n\n") if f.startswith("data: {")]
    assert orjson.loads(frames[-1][6:])["error"]["code"] == "rate_limit_exceeded"
    assert any("Echo" in f for f in frames[:-1])

    # Failover: the preferred channel is throttled, the other one answers.
    shared = alias("bedrock-failover")
    await bedrock_channel(pg, secret_key, bedrock, shared, priority=10)
    await bedrock_channel(pg, secret_key, backup, shared, priority=0)
    bedrock.state.fail_next.append(BedrockError("ThrottlingException", "Rate exceeded"))
    served = await client.chat.completions.create(model=shared, messages=HELLO)
    assert served.choices[0].message.content == "Echo: hello bedrock"
    assert bedrock.calls[-1]["status"] == 429 and backup.calls[-1]["status"] == 200
    assert (served.usage.prompt_tokens, served.usage.completion_tokens) == reported(  # type: ignore[union-attr]
        backup.calls[-1]
    )

    # A wrong secret: AWS refuses the signature, the client gets a 502, the channel is off.
    broken_model = alias("bedrock-bad-secret")
    wrong = f"{bedrock.akid}|{secrets.token_urlsafe(30)}"
    broken = await bedrock_channel(pg, secret_key, bedrock, broken_model, key=wrong)
    calls_before = len(bedrock.calls)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=broken_model, messages=HELLO)
    assert_upstream_auth_failed(refused.value, wrong.split("|")[1])
    assert len(bedrock.calls) == calls_before  # refused before reaching the model
    reason = await eventually_disabled(pg, broken)
    assert wrong.split("|")[1] not in reason
