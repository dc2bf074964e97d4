"""Replicate language models (channel type 46) through the gateway with the openai SDK,
against the strict Replicate simulator (``unigate_sim.replicate``): a chat answered through
``Prefer: wait`` (and, when the prediction is not finished, polled), a stream read from the
prediction's SSE stream URL, both billed on the prediction's ``metrics``; the input built
from the conversation; invalid input → 422, an unknown model → 404, no credit → the channel's,
a refused token → 502 and the channel disabled, a wrong gateway key → 401."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    Simulator,
    alias,
    create_mapped_channel,
    ledger_row,
    refused_key_disables,
    running,
)
from unigate_sim.replicate import create_replicate_app

REPLICATE = 46
TOKEN = "r8_" + secrets.token_urlsafe(30)
LLAMA = "meta/meta-llama-3-8b-instruct"
HELLO: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello r8"}]


class Replicate(Simulator):
    def __init__(self) -> None:
        super().__init__(create_replicate_app({TOKEN}, {LLAMA}))

    def prediction(self) -> dict[str, Any]:
        found: dict[str, Any] = list(self.state.predictions.values())[-1]
        return found


@pytest.fixture
def replicate() -> Iterator[Replicate]:
    yield from running(Replicate())


async def r8_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Replicate,
    model: str,
    upstream: str = LLAMA,
    key: str = TOKEN,
    **extra: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=REPLICATE,
        name="replicate",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        **extra,
    )


def metrics(prediction: dict[str, Any]) -> tuple[int, int]:
    return prediction["metrics"]["input_token_count"], prediction["metrics"]["output_token_count"]


async def test_chat_waited_and_streamed_on_prediction_metrics(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    replicate: Replicate,
) -> None:
    model = alias("r8")
    await r8_channel(pg, secret_key, replicate, model)
    answer = await client.chat.completions.create(model=model, messages=HELLO, temperature=0.2)
    assert answer.choices[0].message.content == "Echo: hello r8"
    call = replicate.calls[-1]
    assert call["path"] == f"/v1/models/{LLAMA}/predictions"
    assert call["headers"]["prefer"] == "wait"
    assert call["headers"]["authorization"] == f"Bearer {TOKEN}"
    # The gateway gives every chat request an output limit; it goes as max_tokens.
    assert call["body"]["input"].pop("max_tokens") > 0
    assert call["body"] == {
        "input": {"prompt": "hello r8", "system_prompt": "Be brief.", "temperature": 0.2},
        "stream": False,
    }
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == metrics(
        replicate.prediction()
    )
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        *metrics(replicate.prediction()),
        False,
    )

    # The model outlasts the wait: the prediction is polled until it has succeeded.
    replicate.state.slow = True
    polled = await client.chat.completions.create(model=model, messages=HELLO)
    assert polled.choices[0].message.content == "Echo: hello r8"
    assert replicate.prediction()["_looks"] == 2
    assert (await ledger_row(pg, tenant, 2))["prompt_tokens"] == metrics(replicate.prediction())[0]
    replicate.state.slow = False

    # A conversation becomes One API's "role: content" lines.
    history: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo: hi"},
        {"role": "user", "content": "and now in pieces"},
    ]
    stream = await client.chat.completions.create(
        model=model, messages=history, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: and now in pieces"
    assert replicate.calls[-1]["body"]["input"]["prompt"] == (
        "user: hi\nassistant: Echo: hi\nuser: and now in pieces\n"
    )
    assert replicate.calls[-1]["body"]["stream"] is True
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == metrics(replicate.prediction())
    second = await ledger_row(pg, tenant, 3)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        *metrics(replicate.prediction()),
        False,
    )


async def test_replicate_refusals(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, replicate: Replicate
) -> None:
    model = alias("r8")
    await r8_channel(pg, secret_key, replicate, model)
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        await client.chat.completions.create(model=model, messages=HELLO, temperature=7)
    assert "input.temperature" in invalid.value.message

    unknown = alias("r8-unknown")
    await r8_channel(pg, secret_key, replicate, unknown, upstream="meta/llama-9")
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model=unknown, messages=HELLO)

    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    sent = len(replicate.calls)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model=model, messages=HELLO)
    assert len(replicate.calls) == sent


async def test_refused_token_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, replicate: Replicate
) -> None:
    model = alias("r8-bad")
    wrong = "r8_" + secrets.token_urlsafe(30)
    broken = await r8_channel(pg, secret_key, replicate, model, key=wrong)
    await refused_key_disables(
        client, pg, broken, model, wrong, HELLO, says="valid authentication token", stream=True
    )
