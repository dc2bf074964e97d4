"""DeepL channels (type 38) through the gateway with the openai SDK, against the strict DeepL
simulator (``unigate_sim.deepl``): the last message translated into the language the model
names, as a chat answer and as a one-chunk stream, billed in DeepL's billed characters; a bad
language → 400, the key's quota spent → the channel's (and another channel serves), a refused
key → 502 and the channel disabled, a wrong gateway key → 401."""

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
from unigate_sim.deepl import create_deepl_app

DEEPL = 38
KEY = secrets.token_hex(16)
TEXT = "Good morning, how are you?"
ASK: Any = [{"role": "user", "content": "ignored earlier turn"}, {"role": "user", "content": TEXT}]


class DeepL(Simulator):
    def __init__(self, quota: int | None = None) -> None:
        super().__init__(create_deepl_app({KEY}, quota=quota))


@pytest.fixture
def deepl() -> Iterator[DeepL]:
    yield from running(DeepL())


async def deepl_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: DeepL,
    model: str,
    upstream: str = "deepl-de",
    key: str = KEY,
    **extra: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=DEEPL,
        name="deepl",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        **extra,
    )


async def test_translation_as_chat_and_stream_billed_in_characters(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, deepl: DeepL
) -> None:
    model = alias("deepl")
    await deepl_channel(pg, secret_key, deepl, model)
    answer = await client.chat.completions.create(model=model, messages=ASK)
    assert answer.choices[0].message.content == f"[DE] {TEXT}"
    call = deepl.calls[-1]
    assert call["path"] == "/v2/translate"
    assert call["headers"]["authorization"] == f"DeepL-Auth-Key {KEY}"
    assert call["body"] == {"text": [TEXT], "target_lang": "DE", "show_billed_characters": True}
    assert answer.usage is not None and answer.usage.prompt_tokens == len(TEXT)
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["unit"], first["quantity"], first["estimated"]) == (
        len(TEXT),
        "character",
        len(TEXT),
        False,
    )

    regional = alias("deepl-us")
    await deepl_channel(pg, secret_key, deepl, regional, upstream="deepl-en-us")
    stream = await client.chat.completions.create(
        model=regional, messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        f"[EN-US] {TEXT}"
    )
    assert deepl.calls[-1]["body"]["target_lang"] == "EN-US"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == len(TEXT)
    second = await ledger_row(pg, tenant, 2)
    assert (second["quantity"], second["estimated"], second["is_stream"]) == (
        len(TEXT),
        False,
        True,
    )


async def test_deepl_refusals(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, deepl: DeepL
) -> None:
    klingon = alias("deepl-tlh")
    await deepl_channel(pg, secret_key, deepl, klingon, upstream="deepl-tlh")
    with pytest.raises(openai.BadRequestError) as bad_lang:
        await client.chat.completions.create(model=klingon, messages=ASK)
    assert "target_lang" in bad_lang.value.message

    # The key's quota is spent: the channel's problem, another channel serves.
    spent = DeepL(quota=5)
    try:
        shared = alias("deepl-shared")
        await deepl_channel(pg, secret_key, spent, shared, priority=10)
        await deepl_channel(pg, secret_key, deepl, shared, priority=0)
        served = await client.chat.completions.create(model=shared, messages=ASK)
        assert served.choices[0].message.content == f"[DE] {TEXT}"
        assert spent.calls[-1]["status"] == 456
    finally:
        spent.stop()

    model = alias("deepl")
    await deepl_channel(pg, secret_key, deepl, model)
    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    sent = len(deepl.calls)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model=model, messages=ASK)
    assert len(deepl.calls) == sent


async def test_refused_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, deepl: DeepL
) -> None:
    model = alias("deepl-bad")
    wrong = secrets.token_hex(16)
    broken = await deepl_channel(pg, secret_key, deepl, model, key=wrong)
    await refused_key_disables(
        client, pg, broken, model, wrong, ASK, says="Authorization failure", stream=True
    )
