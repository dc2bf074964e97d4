"""``response_format`` on Claude (a forced tool) and Gemini (``responseSchema``), checked
against the strict simulators' validators and with the schemas the ``openai`` SDK's
``chat.completions.parse`` really sends for pydantic models."""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest
from openai.lib._parsing._completions import type_to_response_format_param

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.request import chat_to_messages
from unigate_relay.providers.anthropic.response import message_to_chat
from unigate_relay.providers.anthropic.stream import ChatStreamTranslator
from unigate_relay.providers.anthropic.structured import RESPONSE_TOOL
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.providers.gemini.request import InvalidRequest, chat_request
from unigate_relay.providers.gemini.response import completion
from unigate_sim.anthropic import DEFAULT_MODELS, parse_messages_request
from unigate_sim.anthropic.render import render_events, render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.usage import cached_input
from unigate_sim.gemini import check_request
from unigate_sim.gemini.reply import plan, render

from .test_anthropic_translation import anthropic_events, reassembled

CLAUDE = "claude-sonnet-4-20250514"


class Address(pydantic.BaseModel):
    city: str
    zip_code: int


class Person(pydantic.BaseModel):
    name: str
    age: int
    home: Address
    tags: list[str]
    nickname: str | None


def _claude_round_trip(chat: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[bytes]]:
    converted = chat_to_messages(chat, CLAUDE)
    parsed = parse_messages_request(converted, frozenset(DEFAULT_MODELS))
    reply = plan_reply(parsed)
    prompt = cached_input(parsed, set())
    message, finish, usage = message_to_chat(render_message(parsed, reply, prompt), RESPONSE_TOOL)
    assert usage.completion_tokens == reply.output_tokens
    translator = ChatStreamTranslator(
        id="c", model=CLAUDE, created=1, include_usage=True, content_tool=RESPONSE_TOOL
    )
    frames: list[bytes] = []
    for frame in render_events(parsed, reply, prompt):
        for event in anthropic_events(frame):
            frames.extend(translator.feed(event))
    assert translator.usage() == usage
    return message, finish, frames


@pytest.mark.parametrize("stream", [False, True])
def test_a_pydantic_schema_becomes_a_forced_tool_and_comes_back_as_content(stream: bool) -> None:
    chat = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Extract the person."},
            {"role": "user", "content": "Ada, 36, lives in London"},
        ],
        "response_format": type_to_response_format_param(Person),
        "reasoning_effort": "high",
        "stream": stream,
    }
    converted = chat_to_messages(chat, CLAUDE)
    assert converted["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
    (tool,) = converted["tools"]
    assert tool["input_schema"]["properties"]["home"] == {"$ref": "#/$defs/Address"}
    # Anthropic refuses thinking beside a forced tool: structured output goes without it.
    assert "thinking" not in converted
    message, finish, frames = _claude_round_trip(chat)
    assert finish == "stop" and "tool_calls" not in message
    person = Person.model_validate_json(message["content"])
    assert person.home.zip_code == 1
    content, _, calls, stream_finish, _ = reassembled(frames)
    assert (content, calls, stream_finish) == (message["content"], [], "stop")


def test_json_object_takes_any_object() -> None:
    chat = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "give me json"}],
        "response_format": {"type": "json_object"},
    }
    message, finish, frames = _claude_round_trip(chat)
    assert finish == "stop" and isinstance(orjson.loads(message["content"]), dict)
    assert reassembled(frames)[0] == message["content"]


def test_the_clients_own_tools_stay_callable_beside_the_response_tool() -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    chat = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "weather in Oslo?"}],
        "tools": [weather],
        "response_format": type_to_response_format_param(Address),
    }
    converted = chat_to_messages(chat, CLAUDE)
    assert [t["name"] for t in converted["tools"]] == ["get_weather", RESPONSE_TOOL]
    assert converted["tool_choice"] == {"type": "any"}
    # The simulated Claude picks the first tool under "any": a real tool call comes back.
    message, finish, _ = _claude_round_trip(chat)
    assert finish == "tool_calls"
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": []}}, "schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
            "schema",
        ),
        ({"type": "xml"}, "response_format.type"),
        ("json", "response_format"),
    ],
)
def test_formats_claude_cannot_express_are_refused(fmt: Any, param: str) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": fmt}
    with pytest.raises(ConversionError) as refused:
        chat_to_messages(chat, CLAUDE)
    assert param in refused.value.param


def test_text_format_changes_nothing() -> None:
    chat: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    plain = chat_to_messages(chat, CLAUDE)
    assert chat_to_messages({**chat, "response_format": {"type": "text"}}, CLAUDE) == plain
    assert "tools" not in plain


def _never(text: str) -> common_pb2.Usage:
    raise AssertionError("the simulated Gemini always reports usage")


def test_gemini_answers_a_pydantic_schema_through_response_schema() -> None:
    chat = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "Ada, 36, lives in London"}],
        "response_format": type_to_response_format_param(Person),
    }
    gemini = chat_request(chat)
    check_request(orjson.loads(orjson.dumps(gemini)))
    config = gemini["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    # The $ref is inlined: Gemini's schema has no references.
    assert config["responseSchema"]["properties"]["home"]["properties"]["zip_code"] == {
        "type": "integer",
        "title": "Zip Code",
    }
    body, _ = completion(render(plan(gemini, "gemini-2.5-flash")), "m", "id", _never)
    message = orjson.loads(body)["choices"][0]["message"]
    assert Person.model_validate_json(message["content"]).home.zip_code == 1


class Tree(pydantic.BaseModel):
    label: str
    children: list[Tree]


class Scores(pydantic.BaseModel):
    by_name: dict[str, int]


@pytest.mark.parametrize(
    ("model", "where"), [(Tree, "recursive"), (Scores, "map")], ids=["recursive", "map"]
)
def test_gemini_refuses_schemas_its_subset_cannot_express(
    model: type[pydantic.BaseModel], where: str
) -> None:
    chat = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": type_to_response_format_param(model),
    }
    with pytest.raises(InvalidRequest) as refused:
        chat_request(chat)
    assert where in refused.value.message
    assert refused.value.param.startswith("response_format.json_schema.schema")


def test_gemini_refuses_an_unknown_format() -> None:
    chat = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequest):
        chat_request({**chat, "response_format": {"type": "yaml"}})
    assert "responseMimeType" not in chat_request(
        {**chat, "response_format": {"type": "text"}}
    ).get("generationConfig", {})
