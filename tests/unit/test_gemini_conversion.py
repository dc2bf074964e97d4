"""OpenAI ⇄ Gemini conversion, checked against the strict simulator's validator and answers.

The property tests draw OpenAI chat requests (system prompts, multi-part user content with
images, tool call rounds, messy JSON schemas, sampling options) and require that every one
becomes a request the Gemini simulator accepts, and that the simulator's answer comes back —
whole or streamed — with its text, tool calls and usage intact.
"""

from __future__ import annotations

import base64
import string
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unigate.v1 import common_pb2
from unigate_relay.providers.gemini.errors import google_error
from unigate_relay.providers.gemini.ids import parse_tool_call_id, tool_call_id
from unigate_relay.providers.gemini.request import InvalidRequest, chat_request
from unigate_relay.providers.gemini.response import completion, usage_from
from unigate_relay.providers.gemini.schema import clean_schema
from unigate_relay.providers.gemini.stream import StreamTranslator
from unigate_sim.gemini import check_request
from unigate_sim.gemini.reply import plan, render, render_events

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
words = st.text(string.ascii_letters + " ", min_size=1, max_size=20).filter(str.strip)
names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)


def _schemas() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["string", "integer", "number", "boolean"])}
        ),
        st.fixed_dictionaries({"type": st.just(["string", "null"])}),
        st.fixed_dictionaries({"const": words}),
        st.fixed_dictionaries(
            {"type": st.just("string"), "enum": st.lists(words, min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries({"type": st.just("integer"), "enum": st.just([1, 2])}),
        st.fixed_dictionaries(
            {"type": st.just("string"), "format": st.sampled_from(["uri", "date-time", "email"])}
        ),
        st.fixed_dictionaries({"type": st.just("array")}),
    )

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.just("object"),
                    "properties": st.dictionaries(names, inner, max_size=3),
                },
                optional={
                    "additionalProperties": st.booleans(),
                    "required": st.lists(names, max_size=2),
                    "$schema": st.just("http://json-schema.org/draft-07/schema#"),
                    "title": words,
                },
            ),
            st.fixed_dictionaries(
                {"type": st.just("array"), "items": inner}, optional={"minItems": st.just(1)}
            ),
            st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=2)}),
            st.fixed_dictionaries({"oneOf": st.tuples(inner, st.just({"type": "null"})).map(list)}),
        )

    return st.recursive(scalar, extend, max_leaves=6)


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(
        st.lists(
            st.builds(
                lambda n, p, d: {
                    "type": "function",
                    "function": {"name": n, "description": d, "parameters": p},
                },
                names,
                st.one_of(_schemas(), st.just({"type": "object", "properties": {}})),
                words,
            ),
            max_size=3,
            unique_by=lambda t: t["function"]["name"],
        )
    )
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(words)}
        )
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            messages.append({"role": "user", "content": draw(words)})
        else:
            parts: list[dict[str, Any]] = [{"type": "text", "text": draw(words)}]
            if draw(st.booleans()):
                parts.append(
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": draw(st.sampled_from([PNG, "https://example.com/cat.png"]))
                        },
                    }
                )
            messages.append({"role": "user", "content": parts})
        if tools and draw(st.booleans()):
            calls = [
                {
                    "id": f"call_{i}_{draw(names)}",
                    "type": "function",
                    "function": {
                        "name": draw(st.sampled_from([t["function"]["name"] for t in tools])),
                        "arguments": orjson.dumps({"x": draw(words)}).decode(),
                    },
                }
                for i in range(draw(st.integers(1, 2)))
            ]
            messages.append(
                {
                    "role": "assistant",
                    "content": draw(st.one_of(st.none(), words)),
                    "tool_calls": calls,
                }
            )
            for call in calls:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": draw(st.one_of(words, st.just('{"ok": true}'))),
                    }
                )
        elif draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(words)})
    if messages[-1]["role"] == "assistant":
        messages.append({"role": "user", "content": draw(words)})
    body: dict[str, Any] = {"model": "gemini-2.5-flash", "messages": messages}
    if tools:
        body["tools"] = tools
        choice = draw(st.sampled_from(["auto", "none", "required", "named", None]))
        if choice == "named":
            body["tool_choice"] = {
                "type": "function",
                "function": {"name": tools[0]["function"]["name"]},
            }
        elif choice is not None:
            body["tool_choice"] = choice
    options = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "temperature": st.floats(0, 2),
                "top_p": st.floats(0, 1),
                "max_tokens": st.integers(1, 50),
                "stop": st.one_of(words, st.lists(words, max_size=4)),
                "n": st.integers(1, 3),
                "seed": st.integers(0, 1000),
                "reasoning_effort": st.sampled_from(["none", "low", "medium", "high"]),
                "response_format": st.one_of(
                    st.just({"type": "json_object"}),
                    _schemas().map(
                        lambda s: {"type": "json_schema", "json_schema": {"name": "x", "schema": s}}
                    ),
                ),
            },
        )
    )
    return {**body, **options}


def _usage(meta: dict[str, Any]) -> tuple[int, int]:
    return (
        meta["promptTokenCount"],
        meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0),
    )


def _never(_: str) -> common_pb2.Usage:
    raise AssertionError("usage must come from usageMetadata")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_requests())
def test_any_chat_request_becomes_a_valid_gemini_request_and_answers_survive(
    body: dict[str, Any],
) -> None:
    gemini = orjson.loads(orjson.dumps(chat_request(body)))
    check_request(gemini)  # raises GoogleError on anything Gemini would refuse
    answer = plan(gemini, "gemini-2.5-flash")
    native = render(answer)
    openai_body, usage = completion(native, "gemini-2.5-flash", "chatcmpl-x", _never)
    result = orjson.loads(openai_body)
    assert (usage.prompt_tokens, usage.completion_tokens) == _usage(native["usageMetadata"])
    assert result["usage"]["total_tokens"] == native["usageMetadata"]["totalTokenCount"]
    assert len(result["choices"]) == len(native["candidates"])
    for choice, candidate in zip(result["choices"], native["candidates"], strict=True):
        parts = candidate["content"].get("parts", [])
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        message = choice["message"]
        assert (message["content"] or "") == text
        assert [
            (c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls", [])
        ] == [(c["name"], c["args"]) for c in calls]
        assert choice["finish_reason"] == (
            "tool_calls"
            if calls
            else {"STOP": "stop", "MAX_TOKENS": "length"}[candidate["finishReason"]]
        )

    # Streamed, the same answer arrives whole, with the same usage.
    translator = StreamTranslator(id="chatcmpl-x", model="gemini-2.5-flash", include_usage=True)
    frames = [f for event in render_events(answer) for f in translator.feed(event)]
    assert translator.finished and translator.usage == usage
    frames += translator.closing_frames(usage)
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert (
        chunks[-1]["choices"] == []
        and chunks[-1]["usage"]["completion_tokens"] == usage.completion_tokens
    )
    for index, choice in enumerate(result["choices"]):
        deltas = [
            c["choices"][0]["delta"]
            for c in chunks
            if c["choices"] and c["choices"][0]["index"] == index
        ]
        assert "".join(d.get("content") or "" for d in deltas) == (
            choice["message"]["content"] or ""
        )
        streamed_calls = [t for d in deltas for t in d.get("tool_calls", [])]
        assert [(t["function"]["name"], t["function"]["arguments"]) for t in streamed_calls] == [
            (t["function"]["name"], t["function"]["arguments"])
            for t in choice["message"].get("tool_calls", [])
        ]


def test_system_roles_tools_and_config_land_in_their_gemini_places() -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
            {"role": "user", "content": "one"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "two"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": "ok",
                "tool_calls": [
                    {
                        "id": "abc",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "abc", "content": "done"},
            {"role": "user", "content": "three"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}},
                        "additionalProperties": False,
                    },
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "temperature": 0.5,
        "max_completion_tokens": 99,
        "stop": "END",
        "n": 2,
        "reasoning_effort": "low",
        "response_format": {"type": "json_object"},
    }
    gemini = chat_request(body)
    assert gemini["systemInstruction"] == {"parts": [{"text": "be brief\nbe kind"}]}
    roles = [(c["role"], [next(iter(p)) for p in c["parts"]]) for c in gemini["contents"]]
    assert roles == [
        ("user", ["text", "text", "inlineData"]),  # consecutive user messages merged
        ("model", ["text", "functionCall"]),
        ("user", ["functionResponse"]),  # a function response turn holds nothing else
        ("user", ["text"]),
    ]
    assert gemini["contents"][0]["parts"][2]["inlineData"]["mimeType"] == "image/png"
    assert gemini["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": {"content": "done"},
    }
    assert gemini["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
    }
    assert gemini["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    assert gemini["generationConfig"] == {
        "temperature": 0.5,
        "maxOutputTokens": 99,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    check_request(orjson.loads(orjson.dumps(gemini)))


def test_schema_cleaning_keeps_meaning() -> None:
    schema = {
        "$schema": "x",
        "type": "object",
        "$defs": {"City": {"type": "string", "description": "a city"}},
        "properties": {
            "city": {"$ref": "#/$defs/City"},
            "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string", "format": "uri"},
            "either": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["city", "ghost"],
        "additionalProperties": False,
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "a city"},
            "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
            "mode": {"type": "string", "enum": ["fast"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string"},
            "either": {"type": "integer", "nullable": True},
        },
        "required": ["city"],
    }


def test_tool_call_ids_carry_gemini_ids_and_thought_signatures() -> None:
    made = tool_call_id(None, None)
    assert made.startswith("call_") and parse_tool_call_id(made) == (None, None)
    assert parse_tool_call_id(tool_call_id("g-1", "c2lnbmF0dXJl")) == ("g-1", "c2lnbmF0dXJl")
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": tool_call_id("g-1", "c2ln"),
                        "type": "function",
                        "function": {"name": "w", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": tool_call_id("g-1", "c2ln"), "content": "sun"},
        ]
    }
    contents = chat_request(body)["contents"]
    assert contents[1]["parts"][0] == {
        "functionCall": {"name": "w", "args": {}, "id": "g-1"},
        "thoughtSignature": "c2ln",
    }
    assert contents[2]["parts"][0]["functionResponse"]["id"] == "g-1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "nope", "content": "r"},
                ]
            },
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].arguments",
        ),
    ],
)
def test_requests_gemini_cannot_take_are_refused_before_any_call(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        chat_request(body)
    assert refused.value.param == param


def test_finish_reasons_blocks_and_usage() -> None:
    def finish(reason: str, parts: list[dict[str, Any]] | None = None) -> str:
        native = {
            "candidates": [
                {"content": {"parts": parts or [{"text": "x"}]}, "finishReason": reason}
            ],
            "usageMetadata": {"promptTokenCount": 1},
        }
        return str(
            orjson.loads(completion(native, "m", "id", _never)[0])["choices"][0]["finish_reason"]
        )

    assert [
        finish(r)
        for r in (
            "STOP",
            "MAX_TOKENS",
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "OTHER",
        )
    ] == [
        "stop",
        "length",
        "content_filter",
        "content_filter",
        "content_filter",
        "content_filter",
        "stop",
    ]
    assert finish("STOP", [{"functionCall": {"name": "f", "args": {}}}]) == "tool_calls"
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }
    body, usage = completion(blocked, "m", "id", _never)
    assert (
        orjson.loads(body)["choices"][0]["finish_reason"] == "content_filter"
        and usage.prompt_tokens == 7
    )
    meta = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 7,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 22,
    }
    assert usage_from(meta) == common_pb2.Usage(
        prompt_tokens=10, completion_tokens=12, total_tokens=22, cached_tokens=4
    )
    # Thoughts come back as reasoning_content, apart from the answer.
    thought = {
        "candidates": [
            {
                "content": {"parts": [{"text": "hmm", "thought": True}, {"text": "yes"}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": meta,
    }
    message = orjson.loads(completion(thought, "m", "id", _never)[0])["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("yes", "hmm")


def _error(status: int, google_status: str, message: str, reason: str = "", **extra: Any) -> bytes:
    details = (
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}] if reason else []
    )
    details += extra.get("details", [])
    return orjson.dumps(
        {"error": {"code": status, "message": message, "status": google_status, "details": details}}
    )


def test_google_errors_decide_failover_and_auto_disable() -> None:
    bad_key = google_error(
        400,
        _error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            "API_KEY_INVALID",
        ),
        None,
        [],
    )
    assert bad_key.fatal and bad_key.retryable and bad_key.error.code == "upstream_auth_failed"
    denied = google_error(
        403, _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"), None, []
    )
    assert denied.fatal and denied.error.http_status == 502
    limited = google_error(
        429,
        _error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"}],
        ),
        None,
        [],
    )
    assert (
        limited.retryable
        and not limited.fatal
        and limited.error.http_status == 429
        and limited.retry_after == 23
    )
    overloaded = google_error(503, _error(503, "UNAVAILABLE", "The model is overloaded."), None, [])
    assert overloaded.retryable and not overloaded.fatal and overloaded.error.http_status == 503
    client = google_error(
        400, _error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model."), None, []
    )
    assert (
        not client.retryable
        and client.error.http_status == 400
        and "valid role" in client.error.message
    )
    region = google_error(
        400,
        _error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        None,
        [],
    )
    assert region.fatal
    secret = "AIzaSECRETKEY123"
    scrubbed = google_error(400, _error(400, "INVALID_ARGUMENT", f"bad {secret}"), None, [secret])
    assert secret not in scrubbed.error.message
