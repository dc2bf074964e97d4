"""The relay against a hostile or broken provider: redirects are followed within the channel's
origin only (a simulator that redirects to another port carrying the key: the other port sees
nothing), and a provider echoing the key back (upper-cased, or a fragment of it) has it
masked before the client sees the error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from tests.e2e.conftest import Tenant
from tests.e2e.provider_support import Simulator, alias, create_mapped_channel, running
from unigate_cli.devstack import Stack
from unigate_sim.anthropic import create_anthropic_app

ANTHROPIC = 14
KEY = "sk-ant-api03-" + "Zq7xW2pL9mK4vB8nR3tY6uH1jF5gD0sA" * 2
SONNET = "claude-sonnet-4-20250514"


class Recorder(Simulator):
    """Another origin: records every request that reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

        async def anything(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            return JSONResponse({"stolen": True})

        super().__init__(
            Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
        )


class Redirector(Simulator):
    """A provider that redirects: to another origin (``/away``), within its own (``/here``,
    to the real Anthropic simulator mounted at ``/real``), or echoes the key (``/echo``)."""

    def __init__(self, elsewhere: str) -> None:
        self.reached_real = 0

        async def away(request: Request) -> Response:
            return RedirectResponse(f"{elsewhere}/v1/messages", status_code=307)

        async def here(request: Request) -> Response:
            return RedirectResponse("/real/v1/messages", status_code=308)

        async def echo(request: Request) -> Response:
            key = request.headers.get("x-api-key", "")
            message = (
                f"invalid x-api-key {key.upper()}; did you mean {key[5:40]}? ({key.swapcase()})"
            )
            return JSONResponse(
                {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
                status_code=400,
            )

        real = create_anthropic_app({KEY})

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            self.reached_real += 1
            await real(scope, receive, send)

        super().__init__(
            Starlette(
                routes=[
                    Route("/away/v1/messages", away, methods=["POST"]),
                    Route("/here/v1/messages", here, methods=["POST"]),
                    Route("/echo/v1/messages", echo, methods=["POST"]),
                    Mount("/real", app=counted),
                ]
            )
        )


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from running(Recorder())


@pytest.fixture
def redirector(recorder: Recorder) -> Iterator[Redirector]:
    yield from running(Redirector(recorder.url))


async def channel(
    pg: asyncpg.Pool, secret_key: str, base_url: str, model: str, *, priority: int = 0
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=ANTHROPIC,
        name="hostile",
        key=KEY,
        base_url=base_url,
        models={model: SONNET},
        priority=priority,
    )


def ask(client: openai.AsyncOpenAI, model: str) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )


async def test_a_redirect_to_another_origin_is_not_followed_and_the_key_stays(
    stack: Stack,
    pg: asyncpg.Pool,
    secret_key: str,
    tenant: Tenant,
    client: openai.AsyncOpenAI,
    redirector: Redirector,
    recorder: Recorder,
) -> None:
    model = alias("away")
    await channel(pg, secret_key, f"{redirector.url}/away", model)
    with pytest.raises(openai.APIStatusError) as caught:
        await ask(client, model)
    assert caught.value.status_code == 502, caught.value.body
    assert recorder.seen == []  # the other port saw nothing: no key, no body
    # The same provider redirecting within its own origin is followed, key and all.
    model = alias("here")
    await channel(pg, secret_key, f"{redirector.url}/here", model)
    answer = await ask(client, model)
    assert answer.choices[0].message.content
    assert redirector.reached_real == 1
    assert recorder.seen == []


async def test_a_key_echoed_by_the_provider_is_masked_in_any_case_and_in_fragments(
    stack: Stack,
    pg: asyncpg.Pool,
    secret_key: str,
    tenant: Tenant,
    client: openai.AsyncOpenAI,
    redirector: Redirector,
) -> None:
    model = alias("echo")
    await channel(pg, secret_key, f"{redirector.url}/echo", model)
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(client, model)
    text = str(caught.value.body)
    assert "invalid x-api-key" in text and "***" in text
    for form in (KEY, KEY.upper(), KEY.swapcase(), KEY[5:40]):
        assert form not in text
    folded = text.lower()
    # No run of 12 of the key's characters survives, in any case.
    assert not any(KEY.lower()[i : i + 12] in folded for i in range(len(KEY) - 11))
