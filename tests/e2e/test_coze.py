"""Coze bots (channel type 34) through the gateway with the openai SDK, against the strict
Coze v3 simulator (``unigate_sim.coze``): the bot id as model, chat (read from Coze's stream)
and stream billed on Coze's ``usage``, what a bot cannot take refused with a 400, Coze's
refusals mapped (unknown bot → 400, a failed chat → its status, a refused token → 502 and the
channel disabled) and a wrong gateway key → 401."""

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
from unigate_sim.coze import create_coze_app

COZE = 34
TOKEN = "pat_" + secrets.token_urlsafe(40)
BOT = "7512049638368051237"
HELLO: Any = [{"role": "user", "content": "hello bot"}]


class Coze(Simulator):
    def __init__(self) -> None:
        super().__init__(create_coze_app({TOKEN}, {BOT}))


@pytest.fixture
def coze() -> Iterator[Coze]:
    yield from running(Coze())


async def coze_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Coze,
    model: str,
    upstream: str = f"bot-{BOT}",
    key: str = TOKEN,
    **extra: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=COZE,
        name="coze",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        **extra,
    )


def reported(call: dict[str, Any]) -> tuple[int, int]:
    return call["usage"]["input_count"], call["usage"]["output_count"]


async def test_chat_and_stream_on_coze_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, coze: Coze
) -> None:
    model = alias("coze")
    await coze_channel(pg, secret_key, coze, model, config={"user_id": "team-7"})
    history: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo: hi"},
        *HELLO,
    ]
    answer = await client.chat.completions.create(model=model, messages=history)
    assert answer.choices[0].message.content == "Echo: hello bot"
    call = coze.calls[-1]
    assert call["path"] == "/v3/chat" and call["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert call["body"] == {
        "bot_id": BOT,
        "user_id": "team-7",
        "stream": True,
        "auto_save_history": False,
        "additional_messages": [
            {"role": "user", "type": "question", "content": "hi", "content_type": "text"},
            {"role": "assistant", "type": "answer", "content": "Echo: hi", "content_type": "text"},
            {"role": "user", "type": "question", "content": "hello bot", "content_type": "text"},
        ],
    }
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == reported(call)
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        *reported(call),
        False,
    )

    stream = await client.chat.completions.create(
        model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello bot"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == reported(coze.calls[-1])
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        *reported(coze.calls[-1]),
        False,
    )


async def test_what_a_bot_cannot_take_and_coze_refusals(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, coze: Coze
) -> None:
    model = alias("coze")
    await coze_channel(pg, secret_key, coze, model)
    sent = len(coze.calls)
    with pytest.raises(openai.BadRequestError) as system:
        await client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": "be brief"}, *HELLO]
        )
    assert "persona" in system.value.message
    assert len(coze.calls) == sent  # refused before anything is sent

    unknown = alias("coze-unknown")
    await coze_channel(pg, secret_key, coze, unknown, upstream="bot-404")
    with pytest.raises(openai.BadRequestError) as no_bot:
        await client.chat.completions.create(model=unknown, messages=HELLO, stream=True)
    assert "bot_id=404 does not exist" in no_bot.value.message

    coze.state.fail_chat.extend([(4013, "Request rate exceeded")] * 3)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=model, messages=HELLO)
    coze.state.fail_chat.clear()

    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    sent = len(coze.calls)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model=model, messages=HELLO)
    assert len(coze.calls) == sent


async def test_refused_token_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, coze: Coze
) -> None:
    model = alias("coze-bad")
    wrong = "pat_" + secrets.token_urlsafe(40)
    broken = await coze_channel(pg, secret_key, coze, model, key=wrong)
    await refused_key_disables(
        client, pg, broken, model, wrong, HELLO, says="authentication is invalid"
    )
