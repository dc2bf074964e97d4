"""FastGPT (channel type 22) through the gateway with the openai SDK, against the strict
FastGPT profile of the OpenAI-like simulators (``unigate_sim.compatible.fastgpt``): an app's
chat at ``{base}/v1/chat/completions`` with its ``fastgpt-`` key, FastGPT's placeholder usage
(always 1/1/1) never billed — chat and stream counted and marked estimated, the client shown
the count it pays —, its HTTP 500 envelope mapped by its inner code (514: the channel's key,
disabled; 510: its balance), and what FastGPT cannot serve refused with a 400."""

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
from unigate.pricing import price_for, quota_for
from unigate_sim.compatible import CompatibleSimulator, create_compatible_app
from unigate_sim.compatible.fastgpt import PLACEHOLDER_USAGE
from unigate_sim.openai import count_tokens

FASTGPT = 22
KEY = "fastgpt-" + secrets.token_hex(24)
HELLO: Any = [{"role": "user", "content": "hello fastgpt"}]


class FastGPT(Simulator):
    def __init__(self) -> None:
        super().__init__(create_compatible_app("fastgpt", {KEY}))

    @property
    def app(self) -> CompatibleSimulator:
        app: CompatibleSimulator = self.server.server.config.app
        return app


@pytest.fixture
def fastgpt() -> Iterator[FastGPT]:
    yield from running(FastGPT())


async def fastgpt_channel(
    pg: asyncpg.Pool, secret_key: str, sim: FastGPT, model: str, key: str = KEY
) -> int:
    # A self-hosted FastGPT's API root: http://host:3000/api.
    return await create_mapped_channel(
        pg,
        secret_key,
        type=FASTGPT,
        name="fastgpt",
        key=key,
        base_url=sim.url + "/api",
        models={model: "my-app"},
    )


async def test_chat_and_stream_are_counted_not_the_placeholder(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    fastgpt: FastGPT,
) -> None:
    model = alias("fastgpt")
    await fastgpt_channel(pg, secret_key, fastgpt, model)
    answer = await client.chat.completions.create(model=model, messages=HELLO)
    assert answer.choices[0].message.content == "Echo: hello fastgpt"
    call = fastgpt.calls[-1]
    assert call["path"] == "/api/v1/chat/completions" and call["body"]["model"] == "my-app"
    # What FastGPT said is no count; the client sees the count it is billed by.
    assert answer.usage is not None
    assert answer.usage.model_dump(include=set(PLACEHOLDER_USAGE)) != PLACEHOLDER_USAGE
    assert answer.usage.completion_tokens == count_tokens("Echo: hello fastgpt")
    first = await ledger_row(pg, tenant, 1)
    assert first["estimated"] and not first["is_stream"]
    assert first["prompt_tokens"] == answer.usage.prompt_tokens > 1
    assert first["completion_tokens"] == answer.usage.completion_tokens
    priced = quota_for(price_for(model), first["prompt_tokens"], first["completion_tokens"])
    assert first["quota"] == priced > 0

    stream = await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hello fastgpt"
    # FastGPT streams carry no usage: it is not asked for (the field would be ignored).
    assert "stream_options" not in fastgpt.calls[-1]["body"]
    second = await ledger_row(pg, tenant, 2)
    assert second["estimated"] and second["is_stream"]
    assert second["prompt_tokens"] == first["prompt_tokens"]
    assert second["completion_tokens"] == count_tokens(text)
    assert second["quota"] == first["quota"]


async def test_refused_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, fastgpt: FastGPT
) -> None:
    model = alias("fastgpt-bad")
    wrong = "fastgpt-" + secrets.token_hex(24)
    broken = await fastgpt_channel(pg, secret_key, fastgpt, model, key=wrong)
    # FastGPT says it with an HTTP 500: its inner code 514 is what tells the key was refused.
    await refused_key_disables(client, pg, broken, model, wrong, HELLO, says="unAuthApiKey")


async def test_client_mistakes_and_fastgpt_errors(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, fastgpt: FastGPT
) -> None:
    model = alias("fastgpt")
    await fastgpt_channel(pg, secret_key, fastgpt, model)
    sent = len(fastgpt.calls)
    # An app serves chat only.
    with pytest.raises(openai.BadRequestError) as no_embeddings:
        await client.embeddings.create(model=model, input="hello")
    assert "FastGPT does not support `embeddings`" in no_embeddings.value.message
    assert len(fastgpt.calls) == sent

    # The provider's failure is retried elsewhere; a spent balance disables the channel (last).
    cases: list[tuple[dict[str, Any], str]] = [
        ({"code": 500, "statusText": "error", "message": "workflow failed"}, "upstream_error"),
        (
            {"code": 510, "statusText": "insufficientQuota", "message": "账号余额不足"},
            "upstream_quota_exhausted",
        ),
    ]
    for body, code in cases:
        fastgpt.app.state.fail_next.extend([(500, {**body, "data": None})] * 3)
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model=model, messages=HELLO)
        assert info.value.status_code == 502, body
        assert info.value.response.json()["error"]["code"] == code
        fastgpt.app.state.fail_next.clear()
