"""Google PaLM channels (type 11) through the gateway with the openai SDK, against the strict
PaLM API simulator (``unigate_sim.palm``): chat and a one-chunk stream over v1beta2
``generateMessage`` (a system message as the prompt's ``context``, turns as authors "0"/"1",
One API's ``PaLM-2`` calling chat-bison-001, ``n`` as ``candidateCount``), usage counted and
marked estimated (PaLM reports none) and priced as counted; a withheld prompt →
``content_filter``; client mistakes → 4xx (refused before any call, or PaLM's own 404); a
rate-limited channel → another serves; a refused key → 502 and the channel disabled; a wrong
gateway key → 401."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import (
    WEATHER_TOOL,
    Simulator,
    alias,
    create_mapped_channel,
    ledger_row,
    refused_key_disables,
    running,
)
from unigate.tokenizer import count_text
from unigate_sim.palm import BLOCK_WORD, create_palm_app

PALM = 11
KEY = "AIzaSy-sim-" + secrets.token_hex(14)
HISTORY: Any = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "Echo: hi"},
    {"role": "user", "content": "hello"},
    {"role": "user", "content": [{"type": "text", "text": "palm"}]},
]
SENT_PROMPT = {
    "context": "Answer briefly.",
    "messages": [
        {"author": "0", "content": "hi"},
        {"author": "1", "content": "Echo: hi"},
        {"author": "0", "content": "hello\n\npalm"},
    ],
}
ANSWER = "Echo: hello\n\npalm"
HELLO: Any = [{"role": "user", "content": "hello palm"}]


class PaLM(Simulator):
    def __init__(self) -> None:
        super().__init__(create_palm_app({KEY}))


@pytest.fixture
def palm() -> Iterator[PaLM]:
    yield from running(PaLM())


async def palm_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: PaLM,
    model: str,
    upstream: str = "chat-bison-001",
    key: str = KEY,
    **extra: Any,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=PALM,
        name="palm",
        key=key,
        base_url=sim.url,
        models={model: upstream},
        **extra,
    )


def assert_estimated_as_priced(row: asyncpg.Record, answer: str, usage: Any) -> None:
    """The ledger row is the usage the client saw, counted (marked estimated), the answer's
    tokens by the model's encoding, and priced at ratio 1 (the alias has no price of its
    own): one quota unit per token."""
    assert row["estimated"] is True
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row["prompt_tokens"] > 0
    assert row["completion_tokens"] == count_text(answer, "chat-bison-001")
    assert (row["model_ratio"], row["completion_ratio"]) == (1.0, 1.0)
    assert row["quota"] == row["prompt_tokens"] + row["completion_tokens"]


@pytest.mark.parametrize("upstream", ["chat-bison-001", "PaLM-2"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_chat_and_stream_with_estimated_usage(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    palm: PaLM,
    stream: bool,
    upstream: str,
) -> None:
    model = alias("palm")
    await palm_channel(pg, secret_key, palm, model, upstream=upstream)
    if stream:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model=model,
                messages=HISTORY,
                temperature=1.5,
                top_p=0.9,
                max_tokens=200,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == []
        usage = chunks[-1].usage
    else:
        answer = await client.chat.completions.create(
            model=model, messages=HISTORY, temperature=1.5, top_p=0.9, max_tokens=200
        )
        text = answer.choices[0].message.content or ""
        assert answer.choices[0].finish_reason == "stop"
        usage = answer.usage
    assert text == ANSWER
    call = palm.calls[-1]
    assert call["path"] == "/v1beta2/models/chat-bison-001:generateMessage"
    assert call["headers"]["x-goog-api-key"] == KEY and call["query"] == {}
    # OpenAI's temperature range is 0-2, PaLM's 0-1; PaLM has no output limit to send.
    assert call["body"] == {"prompt": SENT_PROMPT, "temperature": 1.0, "topP": 0.9}
    assert usage is not None
    row = await ledger_row(pg, tenant, 1)
    assert row["is_stream"] is stream and row["upstream_model"] == upstream
    assert_estimated_as_priced(row, text, usage)


async def test_candidates_and_a_withheld_prompt(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, palm: PaLM
) -> None:
    model = alias("palm")
    await palm_channel(pg, secret_key, palm, model)
    answer = await client.chat.completions.create(model=model, messages=HELLO, n=2)
    assert [c.message.content for c in answer.choices] == [
        "Echo: hello palm",
        "Echo (2): hello palm",
    ]
    assert palm.calls[-1]["body"]["candidateCount"] == 2
    row = await ledger_row(pg, tenant, 1)
    assert answer.usage is not None
    assert_estimated_as_priced(row, "Echo: hello palmEcho (2): hello palm", answer.usage)

    blocked: Any = [{"role": "user", "content": f"tell me about {BLOCK_WORD}"}]
    withheld = await client.chat.completions.create(model=model, messages=blocked)
    assert withheld.choices[0].finish_reason == "content_filter"
    assert withheld.choices[0].message.content == ""
    stream = await client.chat.completions.create(model=model, messages=blocked, stream=True)
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
    assert finishes[-1] == "content_filter"


async def test_client_mistakes_are_4xx(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, palm: PaLM
) -> None:
    model = alias("palm")
    await palm_channel(pg, secret_key, palm, model)
    sent = len(palm.calls)
    with pytest.raises(openai.BadRequestError) as too_many:
        await client.chat.completions.create(model=model, messages=HELLO, n=9)
    assert "1 to 8 candidates" in too_many.value.message
    with pytest.raises(openai.BadRequestError) as tools:
        await client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER_TOOL])
    assert "no tools" in tools.value.message
    with pytest.raises(openai.BadRequestError) as image:
        await client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        )
    assert "text only" in image.value.message
    assert len(palm.calls) == sent  # refused before anything is sent

    # A model PaLM does not serve: Google's own 404, passed on with its words.
    missing = alias("palm-missing")
    await palm_channel(pg, secret_key, palm, missing, upstream="chat-bison-404")
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model=missing, messages=HELLO)
    assert "models/chat-bison-404 is not found" in not_found.value.message


async def test_rate_limited_channel_gives_way(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, palm: PaLM
) -> None:
    busy = PaLM()
    try:
        busy.state.fail_next.append(
            (
                429,
                {
                    "error": {
                        "code": 429,
                        "message": "Resource has been exhausted (e.g. check quota).",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
            )
        )
        shared = alias("palm-shared")
        await palm_channel(pg, secret_key, busy, shared, priority=10)
        await palm_channel(pg, secret_key, palm, shared, priority=0)
        served = await client.chat.completions.create(model=shared, messages=HELLO)
        assert served.choices[0].message.content == "Echo: hello palm"
        assert len(busy.calls) == 1 and busy.state.fail_next == []
    finally:
        busy.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_refused_key_disables_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, palm: PaLM, stream: bool
) -> None:
    model = alias("palm-bad")
    wrong = "AIzaSy-wrong-" + secrets.token_hex(12)
    broken = await palm_channel(pg, secret_key, palm, model, key=wrong)
    await refused_key_disables(client, pg, broken, model, wrong, HELLO, stream=stream)

    # A wrong gateway key is the client's own 401, and PaLM is never called.
    served = alias("palm")
    await palm_channel(pg, secret_key, palm, served)
    stranger = openai.AsyncOpenAI(
        base_url=str(client.base_url), api_key="sk-" + secrets.token_hex(24), max_retries=0
    )
    sent = len(palm.calls)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model=served, messages=HELLO)
    assert len(palm.calls) == sent
