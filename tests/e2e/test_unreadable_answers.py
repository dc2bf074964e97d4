"""A provider's success whose answer cannot be translated into the client's protocol is billed
the same whichever protocol the client spoke (OpenAI chat, Anthropic Messages, Responses,
Gemini-native): the ledger row carries the usage measured for the provider's answer (the
money rule: the provider did the work), the client gets a clear 502 in its own protocol's
error shape, and the attempt is not retried on another channel (whose usage would replace
the one the provider reported). OpenAI chat and embeddings pass the same answer through as
sent, billed the same.

Each model here is served by two channels to the same strict simulator, so a retry would
show as a second call."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import orjson

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import alias, create_mapped_channel, ledger_row
from tests.e2e.test_anthropic import warm_stack as warm_stack  # a warm stack first (autouse)
from tests.e2e.test_compatible_providers import BY_NAME, Simulated
from unigate.tokens import counted_usage
from unigate_cli.devstack import Stack
from unigate_sim.openai import count_tokens

OPENAI = 1
# Valid JSON, but no completion: what a broken proxy in front of a provider may answer.
NOT_A_COMPLETION: list[Any] = ["upstream", "proxy", "page"]


async def two_channels(
    pg: asyncpg.Pool, secret_key: str, type: int, base_url: str, models: dict[str, str]
) -> None:
    for n in (1, 2):
        await create_mapped_channel(
            pg,
            secret_key,
            type=type,
            name=f"unreadable-{type}-{n}",
            key=SIM_KEY,
            base_url=base_url,
            models=models,
        )


async def post(
    stack: Stack, path: str, key: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(stack.gateway_url + path, json=body, headers=headers)


def error_shape(protocol: str, response: httpx.Response) -> None:
    """The 502 of an unreadable answer, in ``protocol``'s error shape."""
    assert response.status_code == 502, response.text
    body = response.json()
    if protocol == "messages":
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
    elif protocol == "gemini":
        assert body["error"]["code"] == 502 and body["error"]["status"] == "UNAVAILABLE"
    else:
        assert body["error"]["code"] == "bad_upstream_response"
    assert "could not be read" in response.text


async def test_an_untranslatable_chat_answer_is_billed_alike_in_every_protocol(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str
) -> None:
    """DeepSeek speaks only OpenAI chat: Messages, Responses and Gemini are translated onto
    it. Its answer here is JSON but no completion, and reports no usage: every protocol's
    row is the relay's count of the chat request it sent (estimated)."""
    sim = Simulated(BY_NAME["deepseek"])
    try:
        model = alias("ds-unreadable")
        await two_channels(pg, secret_key, 36, sim.base_url, {model: "deepseek-chat"})
        bearer = {"Authorization": f"Bearer {tenant.key}"}
        said = [{"role": "user", "content": "read this back"}]
        calls = [
            ("chat", "/v1/chat/completions", {"model": model, "messages": said}, bearer),
            (
                "messages",
                "/v1/messages",
                {"model": model, "max_tokens": 50, "messages": said},
                {"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
            ),
            ("responses", "/v1/responses", {"model": model, "input": "read this back"}, bearer),
            (
                "gemini",
                f"/v1beta/models/{model}:generateContent",
                {"contents": [{"role": "user", "parts": [{"text": "read this back"}]}]},
                {"x-goog-api-key": tenant.key},
            ),
        ]
        for n, (protocol, path, body, headers) in enumerate(calls, start=1):
            sim.app.state.fail_next.append((200, NOT_A_COMPLETION))
            before = len(sim.calls)
            answer = await post(stack, path, tenant.key, body, headers)
            if protocol == "chat":
                # OpenAI chat passes the provider's answer through as it came.
                assert answer.status_code == 200 and answer.json() == NOT_A_COMPLETION
            else:
                error_shape(protocol, answer)
            assert len(sim.calls) == before + 1, f"{protocol}: retried on the other channel"
            sent = orjson.dumps(sim.calls[-1]["body"])
            expected = counted_usage("chat.completions", sent, "deepseek-chat", "")
            row = await ledger_row(pg, tenant, n)
            assert row["status_code"] == answer.status_code, protocol
            assert row["estimated"] and row["quota"] > 0, protocol
            assert (row["prompt_tokens"], row["completion_tokens"]) == (
                expected.prompt_tokens,
                0,
            ), protocol
    finally:
        sim.stop()


async def test_an_untranslatable_embedding_answer_bills_the_reported_usage(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer
) -> None:
    """The provider reported the tokens it embedded but sent no vectors: OpenAI embeddings
    pass that answer through, Gemini's embedContent cannot be answered (502); both rows are
    exactly the reported tokens."""
    app: Any = simulator.server.config.app
    model = alias("embed-unreadable")
    await two_channels(pg, secret_key, OPENAI, simulator.url, {model: "text-embedding-3-small"})
    tokens = count_tokens("embed me")
    reported = {
        "object": "list",
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    calls = [
        (
            "embeddings",
            "/v1/embeddings",
            {"model": model, "input": "embed me"},
            {"Authorization": f"Bearer {tenant.key}"},
        ),
        (
            "gemini",
            f"/v1beta/models/{model}:embedContent",
            {"content": {"parts": [{"text": "embed me"}]}},
            {"x-goog-api-key": tenant.key},
        ),
    ]
    try:
        for n, (protocol, path, body, headers) in enumerate(calls, start=1):
            app.state.fail_next.append((200, reported))
            before = len(app.state.calls)
            answer = await post(stack, path, tenant.key, body, headers)
            if protocol == "embeddings":
                assert answer.status_code == 200 and answer.json() == reported
            else:
                error_shape(protocol, answer)
            assert len(app.state.calls) == before + 1, f"{protocol}: retried"
            row = await ledger_row(pg, tenant, n)
            assert row["status_code"] == answer.status_code, protocol
            assert (row["prompt_tokens"], row["estimated"]) == (tokens, False), protocol
            assert row["quota"] > 0, protocol
    finally:
        app.state.fail_next.clear()
