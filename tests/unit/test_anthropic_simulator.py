"""The Anthropic simulator: its headers, its strictness about the Messages API's rules, its
answers (echo, tools, thinking), its SSE event sequence and its deterministic caching."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from unigate_sim.anthropic import (
    IMAGE_TOKENS,
    TOOLS_SYSTEM_TOKENS,
    StreamError,
    create_anthropic_app,
    thinking_signature,
)
from unigate_sim.openai import count_tokens

KEY = "sk-ant-sim-" + "a" * 32
MODEL = "claude-sonnet-4-20250514"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture
def app() -> Starlette:
    return create_anthropic_app({KEY})


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def body(**fields: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hello claude"}],
        **fields,
    }


def post(client: TestClient, payload: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/v1/messages", json=payload, headers=HEADERS if headers is None else headers
    )


def refused(client: TestClient, payload: Any, status: int = 400) -> dict[str, Any]:
    response = post(client, payload)
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    assert data["type"] == "error"
    error: dict[str, Any] = data["error"]
    return error


def test_headers_are_checked_before_anything_else(client: TestClient, app: Starlette) -> None:
    missing = post(client, body(), {"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    assert missing.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    # A bearer token is not Anthropic's API key header.
    bearer = post(
        client, body(), {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    )
    assert bearer.status_code == 401
    wrong = post(client, body(), {"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    no_version = post(client, body(), {"x-api-key": KEY})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"
    bad_version = post(client, body(), {"x-api-key": KEY, "anthropic-version": "2099-01-01"})
    assert bad_version.status_code == 400
    # Refused at the door: none of these reached the API.
    assert app.state.calls == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"max_tokens": 5, "messages": []}, "model: Field required"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            "max_tokens: Field required",
        ),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        (body(messages=[]), "messages: at least one message is required"),
        (body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        (body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (body(n=2), "n: Extra inputs are not permitted"),
        (
            body(messages=[{"role": "assistant", "content": "hi"}]),
            'messages: first message must use the "user" role',
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                ]
            ),
            'messages: roles must alternate between "user" and "assistant", but found '
            'multiple "user" roles in a row',
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            "messages: text content blocks must be non-empty",
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "trailing "},
                ]
            ),
            "messages: final assistant content cannot end with trailing whitespace",
        ),
        (
            body(tools=[{"name": "f", "input_schema": {"type": "string"}}]),
            "tools.0.input_schema.type: Input should be 'object'",
        ),
        (body(tools=[{"name": "f"}]), "tools.0.input_schema: Field required"),
        (
            body(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "nope"}),
            "tool_choice: Tool 'nope' not found in provided tools",
        ),
        (
            body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 4000}),
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
        ),
        (
            body(
                max_tokens=4000,
                thinking={"type": "enabled", "budget_tokens": 1024},
                tools=[WEATHER_TOOL],
                tool_choice={"type": "any"},
            ),
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        (body(max_tokens=64001), "max_tokens: 64001 > 64000"),
    ],
)
def test_invalid_requests_are_refused(
    client: TestClient, payload: dict[str, Any], message: str
) -> None:
    error = refused(client, payload)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(message)


def test_system_is_top_level_only(client: TestClient) -> None:
    error = refused(
        client,
        body(messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "x"}]),
    )
    assert 'Unexpected role "system"' in error["message"]
    answer = post(client, body(system=[{"type": "text", "text": "be nice"}])).json()
    assert answer["content"] == [{"type": "text", "text": "Echo: hello claude"}]


def test_content_blocks_are_checked(client: TestClient) -> None:
    gif = {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}
    error = refused(
        client, body(messages=[{"role": "user", "content": [{"type": "image", "source": gif}]}])
    )
    assert "media_type" in error["message"]
    not_base64 = {"type": "base64", "media_type": "image/png", "data": "***"}
    error = refused(
        client,
        body(messages=[{"role": "user", "content": [{"type": "image", "source": not_base64}]}]),
    )
    assert "base64" in error["message"]
    # An assistant turn may not carry a user-only block.
    error = refused(
        client,
        body(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "image", "source": gif}]},
                {"role": "user", "content": "b"},
            ]
        ),
    )
    assert error["message"].startswith("messages.1.content.0.type")
    error = refused(
        client,
        body(messages=[{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]),
    )
    assert error["message"] == "messages.0.content.0.x: Extra inputs are not permitted"


def tool_turns() -> list[Any]:
    return [
        {"role": "user", "content": "weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ]


def test_tool_results_must_answer_the_previous_turn(client: TestClient) -> None:
    answered = post(client, body(messages=tool_turns(), tools=[WEATHER_TOOL])).json()
    assert answered["content"] == [{"type": "text", "text": "Echo: sunny"}]
    # A forced tool is called again after its results (instructor's retries rely on it).
    for forced in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        again = post(
            client, body(messages=tool_turns(), tools=[WEATHER_TOOL], tool_choice=forced)
        ).json()
        assert again["stop_reason"] == "tool_use"
        assert [(b["type"], b["input"]["city"]) for b in again["content"]] == [
            ("tool_use", "sunny")
        ]
    assert answered["stop_reason"] == "end_turn"
    # Answering the call is not enough: every result must answer a call of the turn before.
    extra = tool_turns()
    extra[2]["content"].append({"type": "tool_result", "tool_use_id": "toolu_other"})
    orphan = refused(client, body(messages=extra))
    assert (
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_other" in orphan["message"]
    )
    first = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}]
    assert "unexpected `tool_use_id`" in refused(client, body(messages=first))["message"]
    unanswered = tool_turns()
    unanswered[2] = {"role": "user", "content": "never mind"}
    error = refused(client, body(messages=unanswered))
    assert error["message"].startswith(
        "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after"
    )


def test_tool_use_when_asked_and_parallel_calls(client: TestClient) -> None:
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    called = post(client, body(messages=ask, tools=[WEATHER_TOOL, TIME_TOOL])).json()
    assert called["stop_reason"] == "tool_use"
    (call,) = called["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather"
    assert call["id"].startswith("toolu_") and set(call["input"]) == {"city"}
    both = [{"role": "user", "content": "use all tools please"}]
    parallel = post(client, body(messages=both, tools=[WEATHER_TOOL, TIME_TOOL])).json()
    assert [b["name"] for b in parallel["content"]] == ["get_weather", "get_time"]
    single = post(
        client,
        body(
            messages=both,
            tools=[WEATHER_TOOL, TIME_TOOL],
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        ),
    ).json()
    assert [b["name"] for b in single["content"]] == ["get_weather"]
    forced = post(
        client,
        body(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={"type": "tool", "name": "get_time"}),
    ).json()
    assert [b["name"] for b in forced["content"]] == ["get_time"]
    none = post(
        client, body(messages=ask, tools=[WEATHER_TOOL], tool_choice={"type": "none"})
    ).json()
    assert none["content"][0]["type"] == "text"


def test_thinking_blocks_are_signed_and_checked(client: TestClient) -> None:
    answer = post(
        client, body(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    ).json()
    thinking, text = answer["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Thinking about: hello claude"
    assert thinking["signature"] == thinking_signature(thinking["thinking"])
    assert text == {"type": "text", "text": "Echo: hello claude"}
    assert answer["usage"]["output_tokens"] == count_tokens(thinking["thinking"]) + count_tokens(
        text["text"]
    )
    forged = {"type": "thinking", "thinking": "I decided", "signature": "c2lnbmVk"}
    turns = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [forged, {"type": "text", "text": "b"}]},
        {"role": "user", "content": "c"},
    ]
    assert "Invalid `signature`" in refused(client, body(messages=turns))["message"]
    haiku = body(model="claude-3-5-haiku-20241022", max_tokens=2048)
    haiku["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    assert "does not support thinking" in refused(client, haiku)["message"]


def test_usage_counts_and_deterministic_caching(client: TestClient) -> None:
    answer = post(client, body()).json()
    expected_input = 3 + count_tokens("hello claude")
    assert answer["usage"]["input_tokens"] == expected_input
    assert answer["usage"]["output_tokens"] == count_tokens("Echo: hello claude")
    counted = client.post(
        "/v1/messages/count_tokens",
        json={"model": MODEL, "messages": body()["messages"]},
        headers=HEADERS,
    )
    assert counted.json() == {"input_tokens": expected_input}
    tools = client.post(
        "/v1/messages/count_tokens",
        json={"model": MODEL, "messages": body()["messages"], "tools": [TIME_TOOL]},
        headers=HEADERS,
    ).json()["input_tokens"]
    assert tools > expected_input + TOOLS_SYSTEM_TOKENS
    # A cached system prompt: written once, read afterwards; below the minimum, not cached.
    long_system = "You are a careful assistant. " * 200
    system = [{"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}]
    prefix = count_tokens(long_system)
    first = post(client, body(system=system)).json()["usage"]
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (prefix, 0)
    assert first["input_tokens"] == expected_input
    second = post(client, body(system=system)).json()["usage"]
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, prefix)
    short = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    third = post(client, body(system=short)).json()["usage"]
    assert third["cache_creation_input_tokens"] == third["cache_read_input_tokens"] == 0


def test_cache_writes_are_split_by_lifetime_as_anthropic_bills_them(client: TestClient) -> None:
    handbook = "Stable handbook text. " * 300
    history = "Conversation so far. " * 300
    system = [
        {"type": "text", "text": handbook, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]

    def turn(text: str) -> list[dict[str, Any]]:
        content = [
            {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "question"},
        ]
        return [{"role": "user", "content": content}]

    hour = count_tokens(handbook)  # the 1-hour breakpoint's prefix
    five = hour + 3 + count_tokens(history)  # the 5-minute one's (3: the message)
    rest = count_tokens("question")
    first = post(client, body(system=system, messages=turn(history))).json()["usage"]
    # Nothing read (A = 0): 1-hour writes up to the 1-hour breakpoint (B), 5-minute writes
    # from there to the last breakpoint (C).
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": five - hour,
        "ephemeral_1h_input_tokens": hour,
    }
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (five, 0)
    assert first["input_tokens"] == rest
    second = post(client, body(system=system, messages=turn(history))).json()["usage"]
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, five)
    assert second["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }
    # A new conversation under the same handbook: the 1-hour entry is read, the rest written
    # for 5 minutes; the split is in message_start of a stream too.
    other = "Another conversation. " * 300
    streamed = post(client, body(system=system, messages=turn(other), stream=True))
    start = orjson.loads(streamed.text.split("data: ", 1)[1].split("\n", 1)[0])
    usage = start["message"]["usage"]
    assert usage["cache_read_input_tokens"] == hour
    assert usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 3 + count_tokens(other),
        "ephemeral_1h_input_tokens": 0,
    }
    # A 1-hour breakpoint may not follow a 5-minute one (tools, then system, then messages).
    late = turn(history)
    late[0]["content"][0]["cache_control"]["ttl"] = "1h"
    early: Any = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    error = refused(client, body(system=early, messages=late))
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(
        "messages.0.content.0.cache_control.ttl: a ttl='1h' cache_control block must not come "
        "after a ttl='5m' cache_control block."
    )


def test_images_are_counted(client: TestClient) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "what is this"},
    ]
    answer = post(client, body(messages=[{"role": "user", "content": content}])).json()
    assert answer["usage"]["input_tokens"] == 3 + 2 * IMAGE_TOKENS + count_tokens("what is this")
    assert answer["content"][0]["text"] == "Echo: what is this"


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = orjson.loads(data_line[6:])
        assert data["type"] == name_line[7:]
        events.append((name_line[7:], data))
    return events


def test_stream_event_sequence(client: TestClient) -> None:
    payload = body(
        stream=True,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    )
    response = post(client, payload)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.content)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    starts = [
        data["content_block"]["type"] for name, data in events if name == "content_block_start"
    ]
    assert starts == ["thinking", "tool_use"]
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert "signature_delta" in deltas and deltas[-1] == "input_json_delta"
    arguments = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    )
    assert set(orjson.loads(arguments)) == {"city"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    start_usage = events[0][1]["message"]["usage"]
    assert start_usage["input_tokens"] == final["usage"]["input_tokens"] > 0


def test_faults_and_stream_errors(client: TestClient, app: Starlette) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    app.state.fail_next.append((529, overloaded))
    assert refused(client, body(), status=529) == overloaded["error"]
    app.state.stream_errors.append(StreamError(after=3))
    events = events_of(post(client, body(stream=True)).content)
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    # Every authenticated call is recorded with what it was answered.
    assert [call["status"] for call in app.state.calls] == [529, 200]
