"""AI Proxy Library (channel type 21) through the gateway with the openai SDK, against the
strict ask-API simulator (``unigate_sim.aiproxy_library``): the last user message asked of
the channel's library (``library_id`` from its config), the documents listed after the
answer as One API lists them, chat and stream counted (the API reports no usage: estimated,
priced), the client's mistakes a 400, a channel without a library id or with a refused key
disabled (502, never the client's 401), and the provider's errors mapped."""

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
    eventually_disabled,
    ledger_row,
    refused_key_disables,
    running,
)
from unigate.pricing import price_for, quota_for
from unigate_sim.aiproxy_library import create_aiproxy_library_app
from unigate_sim.openai import count_tokens

LIBRARY_TYPE = 21
KEY = "ap-" + secrets.token_hex(24)
LIBRARY = "lib-7f3a"
DOCS = [
    {"title": "Getting started", "url": "https://docs.example.com/start"},
    {"title": "Billing", "url": "https://docs.example.com/billing"},
]
# One API's reference list, appended to the answer.
REFERENCES = (
    "\n\n参考文档\uff1a\n"
    "1. [Getting started](https://docs.example.com/start)\n"
    "2. [Billing](https://docs.example.com/billing)\n"
)
QUESTION: Any = [{"role": "user", "content": "what is unigate?"}]


class Library(Simulator):
    def __init__(self) -> None:
        super().__init__(create_aiproxy_library_app({KEY}, {LIBRARY: DOCS, "empty": []}))


@pytest.fixture
def library() -> Iterator[Library]:
    yield from running(Library())


async def library_channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Library,
    model: str,
    *,
    key: str = KEY,
    config: dict[str, object] | None = None,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=LIBRARY_TYPE,
        name="aiproxy-library",
        key=key,
        base_url=sim.url,
        models={model: "gpt-3.5-turbo"},
        config={"library_id": LIBRARY} if config is None else config,
    )


def priced(model: str, row: asyncpg.Record) -> int:
    """The row's quota at the model's list price, computed apart from the services."""
    return quota_for(price_for(model), row["prompt_tokens"], row["completion_tokens"])


async def test_answers_with_references_counted_and_estimated(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    library: Library,
) -> None:
    model = alias("library")
    await library_channel(pg, secret_key, library, model)
    history: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo: hi"},
        {"role": "user", "content": [{"type": "text", "text": "what is unigate?"}]},
    ]
    answer = await client.chat.completions.create(model=model, messages=history)
    assert answer.choices[0].message.content == "Echo: what is unigate?" + REFERENCES
    assert answer.choices[0].finish_reason == "stop"
    call = library.calls[-1]
    assert call["path"] == "/api/library/ask"
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    # The library takes one question: the last message's text, of the channel's library.
    assert call["body"] == {
        "model": "gpt-3.5-turbo",
        "query": "what is unigate?",
        "libraryId": LIBRARY,
        "stream": False,
    }
    assert answer.usage is not None
    first = await ledger_row(pg, tenant, 1)
    assert first["estimated"] and not first["is_stream"]
    assert first["prompt_tokens"] == answer.usage.prompt_tokens > 0
    # Only what the library generated is counted, not the reference list unigate appends.
    assert first["completion_tokens"] == count_tokens("Echo: what is unigate?")
    assert first["quota"] == priced(model, first) > 0

    stream = await client.chat.completions.create(
        model=model, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: what is unigate?" + REFERENCES
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert library.calls[-1]["body"]["stream"] is True
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    second = await ledger_row(pg, tenant, 2)
    assert second["estimated"] and second["is_stream"]
    assert second["completion_tokens"] == usage.completion_tokens
    assert second["completion_tokens"] == count_tokens("Echo: what is unigate?")
    assert second["quota"] == priced(model, second) > 0

    # A library that cites nothing: the bare answer.
    bare = alias("library-bare")
    await library_channel(pg, secret_key, library, bare, config={"library_id": "empty"})
    plain = await client.chat.completions.create(model=bare, messages=QUESTION)
    assert plain.choices[0].message.content == "Echo: what is unigate?"


async def test_client_mistakes_are_400s_sent_nowhere(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, library: Library
) -> None:
    model = alias("library")
    await library_channel(pg, secret_key, library, model)
    sent = len(library.calls)
    with pytest.raises(openai.BadRequestError) as last_not_user:
        await client.chat.completions.create(
            model=model, messages=[*QUESTION, {"role": "assistant", "content": "Echo"}]
        )
    assert "must be a `user` message" in last_not_user.value.message
    image: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError) as no_images:
        await client.chat.completions.create(model=model, messages=image, stream=True)
    assert "text only" in no_images.value.message
    assert len(library.calls) == sent

    # A library the key cannot ask: the provider's words, the client's 400.
    other = alias("library-other")
    await library_channel(pg, secret_key, library, other, config={"library_id": "lib-none"})
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.chat.completions.create(model=other, messages=QUESTION)
    assert "library lib-none does not exist" in unknown.value.message


async def test_missing_library_id_and_refused_key_disable_the_channel(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, library: Library
) -> None:
    unset = alias("library-unset")
    broken = await library_channel(pg, secret_key, library, unset, config={})
    sent = len(library.calls)
    with pytest.raises(openai.APIStatusError) as misconfigured:
        await client.chat.completions.create(model=unset, messages=QUESTION)
    assert misconfigured.value.status_code == 502
    error = misconfigured.value.response.json()["error"]
    assert error["code"] == "upstream_misconfigured" and "library_id" in error["message"]
    assert len(library.calls) == sent  # nothing could be sent
    assert "upstream_misconfigured" in await eventually_disabled(pg, broken)

    revoked = alias("library-revoked")
    wrong = "ap-" + secrets.token_hex(24)
    refused_channel = await library_channel(pg, secret_key, library, revoked, key=wrong)
    await refused_key_disables(
        client, pg, refused_channel, revoked, wrong, QUESTION, says="Invalid API Key", stream=True
    )


async def test_provider_errors_are_mapped(
    client: openai.AsyncOpenAI, pg: asyncpg.Pool, secret_key: str, library: Library
) -> None:
    model = alias("library")
    await library_channel(pg, secret_key, library, model)
    cases: list[tuple[int, Any, type[openai.APIStatusError], int]] = [
        # A refusal inside a 200, as One API reads it (errCode not 0).
        (
            200,
            {"success": False, "errCode": 429, "message": "too fast"},
            openai.RateLimitError,
            429,
        ),
        (500, {"success": False, "errCode": 500, "message": "busy"}, openai.APIStatusError, 502),
        (200, {"success": True}, openai.APIStatusError, 502),  # no answer: unreadable
    ]
    for status, body, raised, expected in cases:
        library.state.fail_next.extend([(status, body)] * 3)
        with pytest.raises(raised) as info:
            await client.chat.completions.create(model=model, messages=QUESTION)
        assert info.value.status_code == expected, body
        library.state.fail_next.clear()
