"""Cloudflare Workers AI channels (type 37) through the gateway with the openai SDK, against
the strict Workers AI simulator (``unigate_sim.cloudflare``): the account-scoped paths from
the channel config, chat, stream and embeddings billed on Cloudflare's usage, Cloudflare's
error envelope mapped (a bad model → 400, a refused token → 502 and the channel disabled, a
channel without an account id → never sent), and a wrong gateway key → 401."""

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
    assert_upstream_auth_failed,
    create_mapped_channel,
    eventually_disabled,
    ledger_row,
    running,
)
from unigate_sim.cloudflare import create_cloudflare_app

CLOUDFLARE = 37
ACCOUNT = secrets.token_hex(16)
TOKEN = "cf-" + secrets.token_urlsafe(30)
LLAMA = "@cf/meta/llama-3.1-8b-instruct"
HELLO: Any = [{"role": "user", "content": "hello workers"}]


class Cloudflare(Simulator):
    def __init__(self) -> None:
        super().__init__(create_cloudflare_app(ACCOUNT, {TOKEN}))


@pytest.fixture
def cloudflare() -> Iterator[Cloudflare]:
    yield from running(Cloudflare())


async def cf_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Cloudflare,
    model: str,
    upstream: str = LLAMA,
    *,
    key: str = TOKEN,
    config: dict[str, Any] | None = None,
    **extra: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=CLOUDFLARE,
        name="cloudflare",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        config={"account_id": ACCOUNT} if config is None else config,
        **extra,
    )


async def test_chat_stream_and_embeddings_on_cloudflare_usage(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    cloudflare: Cloudflare,
) -> None:
    model = alias("cf")
    await cf_channel(pg, secret_key, cloudflare, model)
    answer = await client.chat.completions.create(model=model, messages=HELLO)
    assert answer.choices[0].message.content == "Echo: hello workers"
    call = cloudflare.calls[-1]
    assert call["path"] == f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert call["body"]["model"] == LLAMA
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    first = await ledger_row(pg, tenant, 1)
    assert (first["prompt_tokens"], first["completion_tokens"], first["estimated"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
        False,
    )

    # One API's config key for the account (user_id) works too; the usage rides on the
    # finish chunk, read without asking the client's stream for a usage chunk.
    streamed_model = alias("cf")
    await cf_channel(pg, secret_key, cloudflare, streamed_model, config={"user_id": ACCOUNT})
    stream = await client.chat.completions.create(model=streamed_model, messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello workers"
    )
    second = await ledger_row(pg, tenant, 2)
    assert (second["prompt_tokens"], second["completion_tokens"], second["estimated"]) == (
        first["prompt_tokens"],
        first["completion_tokens"],
        False,
    )
    assert second["is_stream"]

    embed_model = alias("cf-embed")
    await cf_channel(pg, secret_key, cloudflare, embed_model, "@cf/baai/bge-large-en-v1.5")
    vectors = await client.embeddings.create(model=embed_model, input=["red apple"])
    assert vectors.data and cloudflare.calls[-1]["path"].endswith("/ai/v1/embeddings")
    assert (await ledger_row(pg, tenant, 3))["prompt_tokens"] == vectors.usage.prompt_tokens


async def test_cloudflare_refusals(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, cloudflare: Cloudflare
) -> None:
    unknown = alias("cf-unknown")
    await cf_channel(pg, secret_key, cloudflare, unknown, "@cf/meta/llama-9")
    with pytest.raises(openai.BadRequestError) as no_model:
        await client.chat.completions.create(model=unknown, messages=HELLO)
    assert "No such model @cf/meta/llama-9" in no_model.value.message

    # Workers AI's text models take string content only.
    model = alias("cf")
    await cf_channel(pg, secret_key, cloudflare, model)
    with pytest.raises(openai.BadRequestError) as image:
        await client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ],
        )
    assert "AiError: Bad input" in image.value.message

    # A wrong gateway key: the client's 401, nothing sent to Cloudflare.
    sent = len(cloudflare.calls)
    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model=model, messages=HELLO)
    assert len(cloudflare.calls) == sent


async def test_refused_token_and_missing_account_disable_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, cloudflare: Cloudflare
) -> None:
    model = alias("cf-bad")
    wrong = "cf-" + secrets.token_urlsafe(30)
    broken = await cf_channel(pg, secret_key, cloudflare, model, key=wrong)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    body = assert_upstream_auth_failed(refused.value, wrong)
    assert "Authentication error" in body["message"]
    assert "upstream_auth_failed" in await eventually_disabled(pg, broken)

    # No account id: nothing can be routed; the channel is disabled, another one serves.
    shared = alias("cf-shared")
    unroutable = await cf_channel(pg, secret_key, cloudflare, shared, config={}, priority=10)
    await cf_channel(pg, secret_key, cloudflare, shared, priority=0)
    sent = len(cloudflare.calls)
    served = await client.chat.completions.create(model=shared, messages=HELLO)
    assert served.choices[0].message.content == "Echo: hello workers"
    assert len(cloudflare.calls) == sent + 1
    assert "account id" in await eventually_disabled(pg, unroutable)
