"""Spark's model table, request conversion (system prompt placement, functions, tool turns),
answer assembly from the simulator's own frames, and error mapping."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unigate_relay.providers.spark.convert import SYSTEM_ACK, Answer, Unsupported, request_frame
from unigate_relay.providers.spark.errors import handshake_error, map_code
from unigate_relay.providers.spark.models import Route, UnknownVersion, route_for
from unigate_sim.openai import count_tokens
from unigate_sim.spark.frames import SparkRequest, answer_frames, parse_request
from unigate_sim.spark.signing import DOMAINS_BY_PATH

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize(
    ("model", "config", "route"),
    [
        ("SparkDesk-v1.1", {}, Route("/v1.1/chat", "lite")),
        ("SparkDesk-v3.1", {}, Route("/v3.1/chat", "generalv3")),
        ("SparkDesk-v3.5", {}, Route("/v3.5/chat", "generalv3.5")),
        ("SparkDesk-v4.0", {}, Route("/v4.0/chat", "4.0Ultra")),
        ("Spark-Max-32K", {}, Route("/chat/max-32k", "max-32k")),
        ("Spark-Pro-128K", {}, Route("/chat/pro-128k", "pro-128k")),
        ("generalv3.5", {}, Route("/v3.5/chat", "generalv3.5")),
        ("SparkDesk", {}, Route("/v1.1/chat", "lite")),
        ("SparkDesk", {"api_version": "v4.0"}, Route("/v4.0/chat", "4.0Ultra")),
        # The model's own version wins over the channel's fallback (One API's order)...
        ("SparkDesk-v3.5", {"api_version": "v1.1"}, Route("/v3.5/chat", "generalv3.5")),
        # ...and an explicit domain/path pins anything, even a service not in the table.
        (
            "anything",
            {"domain": "kjwx", "path": "v1.1/chat_kjwx"},
            Route("/v1.1/chat_kjwx", "kjwx"),
        ),
    ],
)
def test_model_routes(model: str, config: dict[str, Any], route: Route) -> None:
    assert route_for(model, config) == route


def test_every_table_route_is_one_the_service_serves() -> None:
    for model in (
        "SparkDesk-v1.1",
        "SparkDesk-v2.1",
        "SparkDesk-v3.1",
        "SparkDesk-v3.1-128K",
        "SparkDesk-v3.5",
        "SparkDesk-v3.5-32K",
        "SparkDesk-v4.0",
    ):
        route = route_for(model, {})
        assert route.domain in DOMAINS_BY_PATH[route.path]


def test_unknown_version_is_refused() -> None:
    with pytest.raises(UnknownVersion):
        route_for("SparkDesk-v9.9", {})


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "x", "messages": list(messages), **extra}


def test_system_prompt_is_a_system_turn_where_the_domain_takes_one() -> None:
    request = chat({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"})
    frame = request_frame(request, app_id="app", domain="generalv3.5")
    assert frame["payload"]["message"]["text"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    older = request_frame(request, app_id="app", domain="lite")
    assert older["payload"]["message"]["text"] == [
        {"role": "user", "content": "be brief"},
        {"role": "assistant", "content": SYSTEM_ACK},
        {"role": "user", "content": "hi"},
    ]


def test_parameters_header_and_functions() -> None:
    request = chat(
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        temperature=0.2,
        max_tokens=64,
        user="u" * 40,
        tools=[WEATHER_TOOL],
    )
    frame = request_frame(request, app_id="app", domain="4.0Ultra")
    assert frame["header"] == {"app_id": "app", "uid": "u" * 32}
    assert frame["parameter"]["chat"] == {
        "domain": "4.0Ultra",
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert frame["payload"]["functions"]["text"] == [WEATHER_TOOL["function"]]
    none = request_frame({**request, "tool_choice": "none"}, app_id="app", domain="4.0Ultra")
    assert "functions" not in none["payload"]


@pytest.mark.parametrize(
    "request_body",
    [
        chat({"role": "user", "content": "hi"}, tools=[WEATHER_TOOL]),  # on lite
        chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
        chat({"role": "user", "content": "hi"}, n=2),
        chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}),
    ],
)
def test_what_spark_cannot_take_is_refused(request_body: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        request_frame(request_body, app_id="app", domain="lite")


def test_tool_round_trip_is_written_as_turns_the_service_accepts() -> None:
    request = chat(
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        tools=[WEATHER_TOOL],
    )
    frame = request_frame(request, app_id="app", domain="generalv3.5")
    turns = frame["payload"]["message"]["text"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    first = orjson.loads(turns[1]["content"].split("\n")[0])
    assert first == {"function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert (
        turns[2]["content"]
        == "Result of function get_weather: sunny\n\nResult of function get_time: noon"
    )
    parsed = parse_request(orjson.dumps(frame), "app", DOMAINS_BY_PATH["/v3.5/chat"])
    assert parsed.messages == turns


def assemble(frames: list[dict[str, Any]]) -> tuple[Answer, bytes]:
    answer = Answer(id="chatcmpl-x", model="m", created=1)
    out = b"".join(answer.feed(f) for f in frames)
    return answer, out


# The first example builds the tokenizer's encodings.
@settings(deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda s: s.strip()))
def test_answer_assembles_the_simulators_frames(question: str) -> None:
    request = SparkRequest("generalv3.5", [{"role": "user", "content": question}])
    answer, out = assemble(answer_frames(request))
    assert answer.finished and answer.finish_reason == "stop"
    assert answer.message() == {"content": "Echo: " + question}
    assert answer.usage is not None
    assert answer.usage.completion_tokens == count_tokens("Echo: " + question)
    chunks = [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed == "Echo: " + question
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"


def test_function_call_frames_become_one_tool_call() -> None:
    request = SparkRequest(
        "generalv3.5",
        [{"role": "user", "content": "weather in Hefei"}],
        [WEATHER_TOOL["function"]],
    )
    answer, out = assemble(answer_frames(request))
    message = answer.message()
    assert answer.finish_reason == "tool_calls" and message["content"] is None
    (call,) = message["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"weather in Hefei"}'}
    assert call["id"].startswith("call_")
    assert b'"finish_reason":"tool_calls"' in out


@pytest.mark.parametrize(
    ("code", "status", "error_code", "retryable", "fatal"),
    [
        (11200, 502, "upstream_auth_failed", True, True),
        (10016, 502, "upstream_auth_failed", True, True),
        (11201, 502, "upstream_quota_exhausted", True, True),
        (11202, 429, "rate_limit_exceeded", True, False),
        (11203, 429, "rate_limit_exceeded", True, False),
        (10013, 400, "content_filter", False, False),
        (10014, 400, "content_filter", False, False),
        (10019, 400, "content_filter", False, False),
        (10907, 400, "context_length_exceeded", False, False),
        (10163, 400, "invalid_request", False, False),
        (10012, 502, "upstream_error", True, False),
    ],
)
def test_error_codes(code: int, status: int, error_code: str, retryable: bool, fatal: bool) -> None:
    error = map_code(code, "message with secret-abcdef", ["secret-abcdef"])
    assert (error.error.http_status, error.error.code, error.retryable, error.fatal) == (
        status,
        error_code,
        retryable,
        fatal,
    )
    assert "secret-abcdef" not in error.error.message


def test_handshake_refusals() -> None:
    bad_key = handshake_error(401, b'{"message":"HMAC signature does not match"}')
    assert bad_key.fatal and bad_key.error.code == "upstream_auth_failed"
    skew = handshake_error(403, b'{"message":"... a valid date or x-date header is required"}')
    assert skew.retryable and not skew.fatal
    assert handshake_error(403, b'{"message":"Forbidden"}').fatal
