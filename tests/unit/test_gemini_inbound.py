"""The pure pieces of the Gemini-native routes: Google's error shapes at the gateway, the
request checks, the JSON-array stream, the relay's translation to and from OpenAI chat and
embeddings, the output bound, the channel system prompt, the terminal frame and counting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from unigate import errors
from unigate import gemini_endpoints as gemini
from unigate.terminal_frames import terminal_at
from unigate.tokenizer import request_prompt_tokens
from unigate.tokens import sse_payloads, streamed_text
from unigate.v1 import common_pb2
from unigate_gateway.gemini_api import google_error, json_array_stream, model_page, parse_gemini
from unigate_relay.output_bound import bounded_body
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.system_prompt import with_system_prompt
from unigate_relay.translate.gemini_request import (
    embed_to_embeddings,
    generate_to_chat,
    json_schema,
)
from unigate_relay.translate.gemini_response import (
    GenerateStreamWriter,
    chat_to_generate,
    embeddings_to_gemini,
)

USER: Any = {"role": "user", "parts": [{"text": "hi"}]}


def test_errors_take_googles_shape_and_status_names() -> None:
    bad_key = errors.AuthenticationFailed("Incorrect API key provided.")
    status, body = google_error(bad_key)
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    missing = errors.AuthenticationFailed("none", code="missing_api_key")
    assert google_error(missing)[1]["error"]["status"] == "PERMISSION_DENIED"
    assert google_error(missing)[0] == 403
    broke = errors.InsufficientQuota("no quota left")
    assert google_error(broke) == (
        429,
        {"error": {"code": 429, "message": "no quota left", "status": "RESOURCE_EXHAUSTED"}},
    )
    unknown = errors.NotFound("no such model", code="model_not_found")
    assert google_error(unknown)[1]["error"]["status"] == "NOT_FOUND"
    # A provider's own status name, lowered into the relay error's code, is kept.
    precondition = errors.InvalidRequest("region", code="failed_precondition")
    assert google_error(precondition)[1]["error"]["status"] == "FAILED_PRECONDITION"
    overloaded = errors.ClientFacingError("busy", status=529, type="overloaded_error")
    assert google_error(overloaded)[0] == 503


def test_request_checks() -> None:
    call = parse_gemini(
        "streamGenerateContent",
        "gemini-2.5-flash",
        orjson.dumps({"contents": [USER], "generationConfig": {"maxOutputTokens": 7}}),
    )
    assert (call.endpoint, call.stream, call.max_tokens) == (gemini.GENERATE, True, 7)
    assert call.estimated_prompt_tokens > 0
    for body, message in [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [USER], "generationConfig": {"maxOutputTokens": "9"}}, "max_output"),
    ]:
        with pytest.raises(errors.InvalidRequest, match=message):
            parse_gemini("generateContent", "m", orjson.dumps(body))
    with pytest.raises(errors.NotFound):
        parse_gemini("fly", "m", b"{}")
    with pytest.raises(errors.InvalidRequest, match="must be models/m"):
        parse_gemini(
            "batchEmbedContents",
            "m",
            orjson.dumps({"requests": [{"model": "models/x", "content": USER}]}),
        )
    counted = parse_gemini("countTokens", "m", orjson.dumps({"contents": [USER]}))
    assert (counted.endpoint, counted.estimated_prompt_tokens) == (gemini.COUNT_TOKENS, 1)


async def test_json_array_stream() -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield b'data: {"a":1}\n\n'
        yield b'data: {"b":2}\n\ndata: {"c":3}\n\n'

    out = b"".join([part async for part in json_array_stream(frames())])
    assert orjson.loads(out) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_model_page() -> None:
    page = model_page(["a", "b-embedding", "c"], "2", None)
    assert [m["name"] for m in page["models"]] == ["models/a", "models/b-embedding"]
    assert page["models"][1]["supportedGenerationMethods"] == ["embedContent", "batchEmbedContents"]
    assert page["nextPageToken"] == "2"
    assert "nextPageToken" not in model_page(["a", "b", "c"], None, "2")
    known = model_page(["gpt-4o-mini"], None, None)["models"][0]
    assert (known["inputTokenLimit"], known["outputTokenLimit"]) == (128_000, 16_384)


def test_generate_to_chat_turns_tools_and_config() -> None:
    request: Any = {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "see "},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "hm", "thought": True},
                    {"functionCall": {"name": "f", "args": {"a": 1}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "f", "response": {"r": 2}}},
                    {"text": "and?"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "f",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"a": {"type": "INTEGER", "nullable": True}},
                        },
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {
            "maxOutputTokens": 10,
            "stopSequences": ["x"],
            "topK": 3,
            "responseMimeType": "application/json",
        },
    }
    chat = generate_to_chat(request, "gpt-4o-mini", stream=True)
    messages = chat["messages"]
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA"},
    }
    call = messages[2]["tool_calls"][0]
    assert messages[2]["content"] is None and call["function"] == {
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert messages[3] == {"role": "tool", "tool_call_id": call["id"], "content": '{"r":2}'}
    assert messages[4] == {"role": "user", "content": "and?"}
    assert chat["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
    }
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert (chat["max_tokens"], chat["stop"], chat["response_format"]) == (
        10,
        ["x"],
        {"type": "json_object"},
    )
    assert "top_k" not in chat and chat["stream_options"] == {"include_usage": True}
    with pytest.raises(ConversionError):
        generate_to_chat(
            {"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, "m", stream=False
        )
    with pytest.raises(ConversionError):
        generate_to_chat({"contents": [USER], "tools": [{"googleSearch": {}}]}, "m", stream=False)
    assert json_schema({"type": "ARRAY", "items": {"type": "STRING"}}) == {
        "type": "array",
        "items": {"type": "string"},
    }


def test_embed_to_embeddings() -> None:
    body = embed_to_embeddings(
        True,
        {"requests": [{"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8}] * 2},
        "text-embedding-3-small",
    )
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["a", "a"],
        "encoding_format": "float",
        "dimensions": 8,
    }
    assert embeddings_to_gemini(
        {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}, True
    ) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}
    assert embeddings_to_gemini({"data": [{"embedding": [1.0]}]}, False) == {
        "embedding": {"values": [1.0]}
    }
    assert embeddings_to_gemini({"data": "nope"}, False) is None


def test_chat_answers_and_streams_as_gemini() -> None:
    usage = common_pb2.Usage(prompt_tokens=10, completion_tokens=4, cached_tokens=3)
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"x":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    answer = chat_to_generate(completion, "m", usage)
    assert answer["candidates"][0]["content"]["parts"] == [
        {"text": "hi"},
        {"functionCall": {"name": "f", "args": {"x": 1}, "id": "c1"}},
    ]
    assert answer["candidates"][0]["finishReason"] == "STOP"
    assert answer["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 4,
        "totalTokenCount": 14,
        "cachedContentTokenCount": 3,
    }
    writer = GenerateStreamWriter("m")
    frames = writer.feed({"choices": [{"index": 0, "delta": {"content": "He"}}]})
    frames += writer.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "g", "arguments": '{"y"'}}
                        ]
                    },
                }
            ]
        }
    )
    frames += writer.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":2}"}}]},
                    "finish_reason": "length",
                }
            ]
        }
    )
    frames += writer.finish(usage)
    chunks = [orjson.loads(p) for p in sse_payloads(frames)]
    assert len(chunks) == 2
    assert chunks[0]["candidates"][0]["content"]["parts"] == [{"text": "He"}]
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "g", "args": {"y": 2}, "id": "c"}}
    ]
    assert last["usageMetadata"]["promptTokenCount"] == 10
    # The finishing chunk is the stream's terminal frame, and its text is what it said.
    assert terminal_at(gemini.GENERATE, frames) > 0
    assert terminal_at(gemini.GENERATE, frames[: terminal_at(gemini.GENERATE, frames)]) == -1
    assert streamed_text(sse_payloads(frames)).startswith("He")


def test_output_bound_and_system_prompt_on_gemini_bodies() -> None:
    plain = orjson.dumps({"contents": [USER]})
    assert orjson.loads(bounded_body(gemini.GENERATE, plain, 100))["generationConfig"] == {
        "maxOutputTokens": 100
    }
    high = orjson.dumps({"contents": [USER], "generationConfig": {"maxOutputTokens": 500}})
    assert orjson.loads(bounded_body(gemini.GENERATE, high, 100))["generationConfig"] == {
        "maxOutputTokens": 100
    }
    low = orjson.dumps({"contents": [USER], "generationConfig": {"maxOutputTokens": 5}})
    assert bounded_body(gemini.GENERATE, low, 100) is low
    with_system = orjson.dumps(
        {"contents": [USER], "systemInstruction": {"parts": [{"text": "client's"}]}}
    )
    out = orjson.loads(with_system_prompt(gemini.GENERATE, with_system, "operator's"))
    assert out["systemInstruction"] == {"parts": [{"text": "operator's"}, {"text": "client's"}]}


def test_gemini_requests_are_counted() -> None:
    one = request_prompt_tokens(gemini.GENERATE, {"contents": [USER]}, "gemini-2.5-flash")
    two = request_prompt_tokens(
        gemini.GENERATE,
        {"contents": [USER, {"role": "model", "parts": [{"text": "hello there"}]}]},
        "gemini-2.5-flash",
    )
    assert one is not None and two is not None and two > one > 0
    batch = {"requests": [{"content": {"parts": [{"text": "hello world"}]}}] * 3}
    assert request_prompt_tokens(gemini.BATCH_EMBED, batch, "x") == 6
