"""The Responses API on every family, with the ``openai`` SDK's own methods (issue 20):
``responses.create`` / ``stream`` / ``retrieve`` / ``delete`` / ``input_items.list`` /
``input_tokens.count`` over an OpenAI channel (its own Responses API), an Anthropic one
(translated to Messages) and a Gemini one (translated to generateContent), against the
strict simulators; a two-turn conversation through ``previous_response_id`` (replayed to
the translated families, sent as the id to the OpenAI channel that keeps it); tools and
reasoning items; ``store: false``; a response visible to its owner only; the ledger rows
equal to the providers' usage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import openai
import orjson
import pytest

from tests import admin_writes
from tests.e2e.conftest import Tenant, ThreadedServer
from tests.e2e.provider_support import alias, ledger_row, running
from tests.e2e.test_anthropic import Claude, claude_channel, openai_channel
from tests.e2e.test_anthropic import warm_stack as warm_stack  # a warm stack first (autouse)
from tests.e2e.test_compatible_providers import BY_NAME, Simulated
from tests.e2e.test_gemini import Google, gemini_channel
from unigate_cli.devstack import Stack
from unigate_sim.compatible.deepseek import reasoning_text
from unigate_sim.gemini import prompt_tokens as gemini_prompt_tokens
from unigate_sim.openai import count_tokens

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@dataclass
class Family:
    """A channel of one family serving ``model``, and what its simulator was sent."""

    name: str
    model: str
    sim: Any

    def last_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.sim_calls()[-1]["body"]
        return body

    def sim_calls(self) -> list[dict[str, Any]]:
        if self.name == "openai":
            calls: list[dict[str, Any]] = self.sim.server.config.app.state.calls
            return calls
        if self.name == "gemini":
            return list(self.sim.state.calls)
        return list(self.sim.calls)


@pytest.fixture
def claude() -> Iterator[Claude]:
    yield from running(Claude())


@pytest.fixture
def google() -> Iterator[Google]:
    yield from running(Google())


async def family_of(
    name: str,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    claude: Claude,
    google: Google,
) -> Family:
    if name == "openai":
        model = alias("gpt")
        await openai_channel(pg, secret_key, simulator, model)
        return Family(name, model, simulator)
    if name == "anthropic":
        model = alias("claude")
        await claude_channel(pg, secret_key, claude, model)
        return Family(name, model, claude)
    return Family(name, await gemini_channel(pg, secret_key, google, "gemini-2.5-flash"), google)


@pytest.fixture(params=["openai", "anthropic", "gemini"])
async def family(
    request: pytest.FixtureRequest,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    claude: Claude,
    google: Google,
) -> Family:
    return await family_of(request.param, pg, secret_key, simulator, claude, google)


@pytest.fixture(params=["anthropic", "gemini"])
async def translated(
    request: pytest.FixtureRequest,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    claude: Claude,
    google: Google,
) -> Family:
    return await family_of(request.param, pg, secret_key, simulator, claude, google)


def texts(value: Any) -> str:
    """Every string in a JSON value, joined: where a conversation's words went upstream."""
    return orjson.dumps(value).decode()


async def assert_row_is(
    pg: asyncpg.Pool, tenant: Tenant, n: int, usage: Any, *, stream: bool = False
) -> asyncpg.Record:
    row = await ledger_row(pg, tenant, n)
    assert usage is not None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert (row["endpoint"], row["status_code"], row["estimated"], row["is_stream"]) == (
        "responses",
        200,
        False,
        stream,
    )
    assert row["quota"] > 0
    return row


async def test_create_stream_retrieve_input_items_two_turns_delete(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, family: Family
) -> None:
    first = await client.responses.create(
        model=family.model, input="hello there", instructions="Be brief."
    )
    assert first.output_text == "Echo: hello there"
    assert first.status == "completed" and first.id.startswith("resp_")
    assert first.usage is not None
    assert first.usage.output_tokens == count_tokens("Echo: hello there")
    sent = family.last_body()
    if family.name == "gemini":  # the ledger is what the provider counted for what it got
        assert first.usage.input_tokens == gemini_prompt_tokens(sent)
        assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    elif family.name == "anthropic":
        assert sent["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    else:
        assert sent["instructions"] == "Be brief."
    await assert_row_is(pg, tenant, 1, first.usage)

    # Streamed through the SDK's stream helper: it checks the event sequence as it goes.
    async with client.responses.stream(model=family.model, input="stream please") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_item.added" in kinds and "response.content_part.added" in kinds
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert final.output_text == "Echo: stream please"
    await assert_row_is(pg, tenant, 2, final.usage, stream=True)

    # Stored: retrieved, with its input items listed (OpenAI's cursor pages).
    again = await client.responses.retrieve(first.id)
    assert (again.id, again.output_text) == (first.id, "Echo: hello there")
    assert (await client.responses.retrieve(final.id)).output_text == "Echo: stream please"
    items = [item async for item in client.responses.input_items.list(first.id)]
    assert len(items) == 1
    item: Any = items[0]
    assert (item.type, item.role, item.content[0].text) == ("message", "user", "hello there")

    # The second turn continues the first.
    second = await client.responses.create(
        model=family.model, input="and again", previous_response_id=first.id
    )
    assert second.output_text == "Echo: and again"
    assert second.previous_response_id == first.id
    sent = family.last_body()
    if family.name == "openai":
        # The channel that produced the first turn keeps it: the id goes there as it is.
        assert sent["previous_response_id"] == first.id and sent["input"] == "and again"
    else:
        # Replayed: the provider got the whole conversation.
        assert "hello there" in texts(sent) and "Echo: hello there" in texts(sent)
        assert second.usage is not None and first.usage is not None
        assert second.usage.input_tokens > first.usage.input_tokens
    await assert_row_is(pg, tenant, 3, second.usage)

    # Deleted: gone for retrieve, input items and a later turn.
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.retrieve(first.id)
    assert missing.value.body == {
        "message": f"Response with id '{first.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(first.id)
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(
            model=family.model, input="more", previous_response_id=first.id
        )
    assert unknown.value.code == "previous_response_not_found"

    # store: false keeps nothing.
    unstored = await client.responses.create(model=family.model, input="forget me", store=False)
    assert unstored.output_text == "Echo: forget me"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)


async def test_tools_and_a_streamed_conversation(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, translated: Family
) -> None:
    model = translated.model
    called = await client.responses.create(
        model=model, input="what is the weather in Paris", tools=[WEATHER]
    )
    calls: list[Any] = [o for o in called.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    # (Each simulator picks the city its own way: the last word, or the whole question.)
    assert json.loads(calls[0].arguments)["city"].endswith("Paris")
    await assert_row_is(pg, tenant, 1, called.usage)

    # The tool's result, streamed, continuing the stored conversation.
    result = [{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}]
    async with client.responses.stream(
        model=model, input=result, tools=[WEATHER], previous_response_id=called.id
    ) as stream:
        answer = await stream.get_final_response()
    assert answer.output_text == "Echo: sunny"
    await assert_row_is(pg, tenant, 2, answer.usage, stream=True)
    stored = await client.responses.retrieve(answer.id)
    assert stored.output_text == "Echo: sunny" and stored.previous_response_id == called.id

    # A streamed call of the tool: its arguments arrive as deltas.
    async with client.responses.stream(
        model=model, input="weather in Rome?", tools=[WEATHER], store=False
    ) as stream:
        kinds = [event.type async for event in stream]
        streamed = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    streamed_calls: list[Any] = [o for o in streamed.output if o.type == "function_call"]
    assert json.loads(streamed_calls[0].arguments)["city"].endswith("Rome?")
    await assert_row_is(pg, tenant, 3, streamed.usage, stream=True)


async def test_reasoning_items_on_claude(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, claude: Claude, secret_key: str
) -> None:
    model = alias("claude")
    await claude_channel(pg, secret_key, claude, model)
    answer = await client.responses.create(
        model=model, input="think first", reasoning={"effort": "low"}, max_output_tokens=4000
    )
    kinds = [o.type for o in answer.output]
    assert kinds == ["reasoning", "message"]
    reasoning: Any = answer.output[0]
    assert reasoning.summary[0].text.startswith("Thinking about: think first")
    assert answer.output_text == "Echo: think first"
    await assert_row_is(pg, tenant, 1, answer.usage)
    async with client.responses.stream(
        model=model, input="think again", reasoning={"effort": "low"}, max_output_tokens=4000
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert [o.type for o in final.output] == ["reasoning", "message"]
    await assert_row_is(pg, tenant, 2, final.usage, stream=True)


async def test_input_tokens_counted_never_billed(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, family: Family
) -> None:
    counted = await client.responses.input_tokens.count(
        model=family.model, input="count these words please"
    )
    assert counted.input_tokens > 0
    row = await ledger_row(pg, tenant, 1)
    assert (row["endpoint"], row["quota"], row["prompt_tokens"]) == (
        "responses.input_tokens",
        0,
        0,
    )
    first = await client.responses.create(model=family.model, input="count these words please")
    longer = await client.responses.input_tokens.count(
        model=family.model, input="and these", previous_response_id=first.id
    )
    assert longer.input_tokens > counted.input_tokens


async def test_a_response_is_its_owners_only(
    client: openai.AsyncOpenAI, stack: Stack, pg: asyncpg.Pool, channel_id: int
) -> None:
    mine = await client.responses.create(model="gpt-4o-mini", input="private words")
    other_user = await admin_writes.create_user(
        pg, username=f"other-{alias('u')}", password="other-user-password-1", quota=10**9
    )
    token = await admin_writes.create_token(
        pg, user_id=other_user, name="other", unlimited_quota=True
    )
    other = openai.AsyncOpenAI(
        api_key=token.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await other.responses.create(
            model="gpt-4o-mini", input="steal", previous_response_id=mine.id
        )
    assert refused.value.code == "previous_response_not_found"
    # Still there for its owner; another key of the same user sees it too.
    assert (await client.responses.retrieve(mine.id)).output_text == "Echo: private words"
    sibling = await admin_writes.create_token(pg, user_id=1, name="sibling", unlimited_quota=True)
    same_user = openai.AsyncOpenAI(
        api_key=sibling.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    assert (await same_user.responses.retrieve(mine.id)).id == mine.id
    # A bad key is a 401, whatever the id.
    bad = openai.AsyncOpenAI(
        api_key="sk-" + "x" * 48, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await bad.responses.retrieve(mine.id)


async def test_client_mistakes_are_openai_shaped_4xx(
    client: openai.AsyncOpenAI, claude: Claude, pg: asyncpg.Pool, secret_key: str
) -> None:
    model = alias("claude")
    await claude_channel(pg, secret_key, claude, model)
    # A hosted tool has no counterpart on a translated family.
    with pytest.raises(openai.BadRequestError) as hosted:
        await client.responses.create(
            model=model, input="search", tools=[{"type": "web_search_preview"}]
        )
    assert hosted.value.param == "tools[0]"
    with pytest.raises(openai.BadRequestError) as typed:
        await client.responses.create(model=model, input="x", store="yes")  # type: ignore[arg-type]
    assert typed.value.param == "store"
    first = await client.responses.create(model=model, input="one")
    with pytest.raises(openai.BadRequestError) as limit:
        await client.get(
            f"/responses/{first.id}/input_items", cast_to=object, options={"params": {"limit": 0}}
        )
    assert limit.value.param == "limit"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_does_not_exist")


async def test_input_items_pages(client: openai.AsyncOpenAI) -> None:
    items: Any = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    response = await client.responses.create(model="gpt-4o-mini", input=items)
    page = await client.responses.input_items.list(response.id, limit=2)
    first_page: Any = page.data
    assert [i.content[0].text for i in first_page] == ["line 4", "line 3"] and page.has_more
    every: Any = [i async for i in client.responses.input_items.list(response.id, limit=2)]
    assert [i.content[0].text for i in every] == [f"line {i}" for i in (4, 3, 2, 1, 0)]
    ascending: Any = await client.responses.input_items.list(response.id, order="asc", limit=10)
    assert [i.content[0].text for i in ascending.data] == [f"line {i}" for i in range(5)]
    assert not ascending.has_more


async def test_a_conversation_moves_between_families(
    client: openai.AsyncOpenAI,
    tenant: Tenant,
    pg: asyncpg.Pool,
    claude: Claude,
    secret_key: str,
    simulator: ThreadedServer,
) -> None:
    """Started on Claude, continued on an OpenAI channel that never saw it: the OpenAI
    channel gets the conversation replayed, not an id it never issued; and back."""
    model = alias("claude")
    await claude_channel(pg, secret_key, claude, model)
    first = await client.responses.create(model=model, input="first words")
    second = await client.responses.create(
        model="gpt-4o-mini", input="second words", previous_response_id=first.id
    )
    assert second.output_text == "Echo: second words"
    sent = simulator.server.config.app.state.calls[-1]["body"]
    assert "previous_response_id" not in sent
    assert "first words" in texts(sent["input"]) and "Echo: first words" in texts(sent["input"])
    await assert_row_is(pg, tenant, 2, second.usage)
    # Back on Claude: both earlier turns are replayed, the OpenAI one from the store.
    third = await client.responses.create(
        model=model, input="third words", previous_response_id=second.id
    )
    assert third.output_text == "Echo: third words"
    replayed = texts(claude.calls[-1]["body"]["messages"])
    for said in ("first words", "Echo: first words", "second words", "Echo: second words"):
        assert said in replayed


async def test_an_openai_compatible_provider_without_responses_is_translated(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, secret_key: str
) -> None:
    """DeepSeek speaks OpenAI chat only: its channels serve the Responses API translated,
    its reasoning as a reasoning item, never a /responses call it would refuse."""
    sim = Simulated(BY_NAME["deepseek"])
    try:
        reasoner = alias("ds-reasoner")
        await sim.channel(pg, secret_key, {reasoner: "deepseek-reasoner"})
        answer = await client.responses.create(model=reasoner, input="think this through")
        assert sim.calls[-1]["path"].endswith("/chat/completions")
        assert [o.type for o in answer.output] == ["reasoning", "message"]
        reasoning: Any = answer.output[0]
        assert reasoning.summary[0].text == reasoning_text(
            [{"role": "user", "content": "think this through"}]
        )
        assert answer.output_text == "Echo: think this through"
        await assert_row_is(pg, tenant, 1, answer.usage)
        async with client.responses.stream(model=reasoner, input="and stream it") as stream:
            final = await stream.get_final_response()
        assert final.output_text == "Echo: and stream it"
        await assert_row_is(pg, tenant, 2, final.usage, stream=True)
    finally:
        sim.stop()
