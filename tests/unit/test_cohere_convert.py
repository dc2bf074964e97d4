"""Cohere request conversion (roles, tool turns, tool_choice, sampling ranges), answer
conversion (finish reasons, usage billed on ``tokens``), the stream translator fed with the
simulator's own events, embeddings and rerank."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unigate_relay.providers.cohere.request import Unsupported, chat_body, embed_body, rerank_body
from unigate_relay.providers.cohere.response import (
    chat_message,
    chat_usage,
    embeddings_body,
    finish_reason,
    rerank_answer,
)
from unigate_relay.providers.cohere.stream import EventTranslator
from unigate_sim.cohere import checks
from unigate_sim.cohere.app import stream_events
from unigate_sim.cohere.replies import chat_reply, chat_usage_of

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_roles_and_tool_turns_in_cohere_shape() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {
                "role": "assistant",
                "content": "I will look it up.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        ],
        "tools": [TOOL],
        "stop": "END",
        "top_p": 1.0,
        "max_tokens": 50,
    }
    body = chat_body(request, "command-r", stream=True)
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][2] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
        "tool_plan": "I will look it up.",
    }
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "rain"}
    assert (body["stop_sequences"], body["p"], body["max_tokens"], body["stream"]) == (
        ["END"],
        0.99,
        50,
        True,
    )
    # The simulator, strict as Cohere, takes the converted body.
    checks.known_fields(body, checks.CHAT_FIELDS)
    checks.messages(body["messages"])
    checks.tools(body["tools"])


@pytest.mark.parametrize(
    ("choice", "expected", "tools"),
    [
        ("none", "NONE", 1),
        ("required", "REQUIRED", 1),
        ({"type": "function", "function": {"name": "get_weather"}}, "REQUIRED", 1),
    ],
)
def test_tool_choice(choice: Any, expected: str, tools: int) -> None:
    body = chat_body(
        {"messages": [{"role": "user", "content": "x"}], "tools": [TOOL], "tool_choice": choice},
        "command-r",
        stream=False,
    )
    assert body["tool_choice"] == expected and len(body["tools"]) == tools


def test_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = chat_body(
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": schema},
            },
        },
        "command-r",
        stream=False,
    )
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": [{"role": "function", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x"}], "n": 3},
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
    ],
)
def test_unsupported(request_body: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        chat_body(request_body, "command-r", stream=False)


def test_usage_is_billed_on_tokens_not_billed_units() -> None:
    usage = chat_usage(
        {
            "billed_units": {"input_tokens": 5, "output_tokens": 7},
            "tokens": {"input_tokens": 40, "output_tokens": 7},
        }
    )
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (40, 7)
    fallback = chat_usage({"billed_units": {"input_tokens": 5, "output_tokens": 7}})
    assert fallback is not None and fallback.prompt_tokens == 5
    assert chat_usage({}) is None


@pytest.mark.parametrize(
    ("cohere", "openai"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
    ],
)
def test_finish_reasons(cohere: str, openai: str) -> None:
    assert finish_reason(cohere) == openai


def test_tool_plan_is_the_content_of_a_tool_call_answer() -> None:
    message = chat_message(
        {
            "role": "assistant",
            "tool_plan": "I will call get_weather.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        }
    )
    assert message["content"] == "I will call get_weather."
    assert message["tool_calls"][0]["id"] == "t1"


def translate(events: list[dict[str, Any]]) -> tuple[EventTranslator, list[dict[str, Any]]]:
    translator = EventTranslator(id="chatcmpl-x", model="m", created=1)
    out = b"".join(translator.feed(e) for e in events)
    return translator, [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line]


# The first example builds the tokenizer's encodings.
@settings(deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda s: s.strip()))
def test_stream_translator_reassembles_the_simulators_text(question: str) -> None:
    body = {
        "model": "command-r",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    messages = checks.messages(body["messages"])
    reply = chat_reply(body, messages)
    usage = chat_usage_of(body, messages, reply.output_tokens())
    translator, chunks = translate(stream_events(reply, usage, "id"))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == reply.text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.finished and translator.usage is not None
    assert translator.usage.prompt_tokens == usage["tokens"]["input_tokens"]


def test_stream_translator_tool_calls() -> None:
    body = {
        "model": "command-r",
        "messages": [{"role": "user", "content": "weather in Oslo"}],
        "tools": [TOOL],
    }
    messages = checks.messages(body["messages"])
    reply = chat_reply(body, messages)
    _, chunks = translate(stream_events(reply, chat_usage_of(body, messages, 3), "id"))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert (
        calls[0]["id"] == reply.tool_calls[0]["id"]
        and calls[0]["function"]["name"] == "get_weather"
    )
    assert (
        "".join(c["function"]["arguments"] for c in calls)
        == reply.tool_calls[0]["function"]["arguments"]
    )
    assert {c["index"] for c in calls} == {0}
    plan = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert plan == reply.tool_plan
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_failed_generation_is_not_a_finish() -> None:
    translator = EventTranslator(id="x", model="m", created=1)
    assert translator.feed({"type": "message-end", "delta": {"finish_reason": "ERROR"}}) == b""
    assert translator.finished and translator.failed_reason == "ERROR"


def test_embeddings() -> None:
    body = embed_body({"input": "hi", "dimensions": 256}, "embed-v4.0", {})
    assert body == {
        "model": "embed-v4.0",
        "texts": ["hi"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert (
        embed_body({"input": ["a"]}, "m", {"input_type": "clustering"})["input_type"]
        == "clustering"
    )
    with pytest.raises(Unsupported):
        embed_body({"input": [[1, 2, 3]]}, "m", {})
    answer = {
        "embeddings": {"float": [[0.5, -0.25]]},
        "meta": {"billed_units": {"input_tokens": 3}},
    }
    out, usage = embeddings_body(answer, "m", "base64")
    packed = base64.b64decode(out["data"][0]["embedding"])
    assert struct.unpack("<2f", packed) == (0.5, -0.25)
    assert (usage.prompt_tokens, out["usage"]) == (3, {"prompt_tokens": 3, "total_tokens": 3})


def test_rerank() -> None:
    body, documents = rerank_body(
        {"query": "q", "documents": ["a", {"text": "b"}], "top_n": 1, "return_documents": True},
        "rerank-v3.5",
    )
    assert body == {"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"], "top_n": 1}
    answer = {
        "id": "r1",
        "results": [{"index": 1, "relevance_score": 0.9}],
        "meta": {"billed_units": {"search_units": 2}},
    }
    out, usage = rerank_answer(answer, "rerank-v3.5", documents, True)
    assert out["results"] == [{"index": 1, "relevance_score": 0.9, "document": {"text": "b"}}]
    assert (usage.unit, usage.quantity, usage.prompt_tokens) == ("search_unit", 2, 0)
