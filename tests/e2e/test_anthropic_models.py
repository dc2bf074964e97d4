"""``GET /v1/models`` for Anthropic clients: the ``anthropic`` SDK lists (page by page) and
retrieves the key's models in Anthropic's shape, an older client sending only ``x-api-key``
is served too, errors are Anthropic's, and every answer carries ``request-id``; OpenAI
clients still get OpenAI's list."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import Tenant
from unigate_cli.devstack import Stack


@pytest.fixture
def claude_client(stack: Stack, tenant: Tenant) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=tenant.key, base_url=stack.gateway_url, max_retries=0, timeout=60
    )


async def test_the_anthropic_sdk_lists_and_retrieves_the_keys_models(
    claude_client: anthropic.AsyncAnthropic, client: openai.AsyncOpenAI
) -> None:
    expected = [m.id async for m in client.models.list()]
    assert len(expected) >= 3
    # Two per page: the SDK follows after_id until has_more is false.
    listed = [m async for m in claude_client.models.list(limit=2)]
    assert [m.id for m in listed] == expected
    assert {m.type for m in listed} == {"model"}
    assert listed[0].display_name == expected[0] and listed[0].created_at.year == 1970

    page = await claude_client.models.list(limit=2)
    assert page.has_more and page.first_id == expected[0] and page.last_id == expected[1]
    earlier = await claude_client.models.list(before_id=expected[2], limit=1)
    assert [m.id for m in earlier.data] == [expected[1]] and earlier.has_more

    one = await claude_client.models.retrieve(expected[0])
    assert (one.id, one.type) == (expected[0], "model")
    with pytest.raises(anthropic.NotFoundError) as missing:
        await claude_client.models.retrieve("no-such-model")
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert missing.value.response.headers["request-id"]


async def test_an_old_client_with_only_x_api_key_and_anthropic_errors(
    stack: Stack, tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        listed = await http.get("/v1/models", headers={"x-api-key": tenant.key})
        assert listed.status_code == 200
        body = listed.json()
        assert set(body) == {"data", "has_more", "first_id", "last_id"}
        assert body["data"][0]["type"] == "model"
        assert listed.headers["request-id"] == listed.headers["x-request-id"]

        wrong = await http.get(
            "/v1/models", headers={"x-api-key": "sk-wrong", "anthropic-version": "2023-06-01"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["type"] == "error"
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert wrong.headers["request-id"]

        too_many = await http.get("/v1/models?limit=1001", headers={"x-api-key": tenant.key})
        assert too_many.status_code == 400
        assert too_many.json()["error"]["type"] == "invalid_request_error"

        openai_shaped = await http.get(
            "/v1/models", headers={"authorization": f"Bearer {tenant.key}"}
        )
        assert openai_shaped.json()["object"] == "list"
        assert "request-id" not in openai_shaped.headers


async def test_messages_answers_carry_request_id(
    claude_client: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude_client.messages.create(model="gpt-4o-mini", max_tokens=0, messages=[])
    assert refused.value.response.headers["request-id"].startswith(
        refused.value.response.headers["x-request-id"]
    )
