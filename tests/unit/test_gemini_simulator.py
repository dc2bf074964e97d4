"""The Gemini API simulator refuses what Google refuses, in Google's words, and answers in
Google's shapes (so the relay's translation is tested against the real contract)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from unigate_sim.gemini import BLOCK_WORD, create_gemini_app, prompt_tokens
from unigate_sim.openai import count_tokens

KEY = "AIza-sim-" + "g" * 30
URL = "/v1beta/models/gemini-2.5-flash:generateContent"
HELLO: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_gemini_app({KEY}))


def post(client: TestClient, body: Any, url: str = URL, **headers: str) -> Any:
    return client.post(url, json=body, headers={"x-goog-api-key": KEY, **headers})


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


def test_keys_header_or_query_and_google_refusals(client: TestClient) -> None:
    assert post(client, HELLO).status_code == 200
    assert client.post(URL + f"?key={KEY}", json=HELLO).status_code == 200
    missing = client.post(URL, json=HELLO)
    assert missing.status_code == 403 and error_of(missing)["status"] == "PERMISSION_DENIED"
    wrong = client.post(URL, json=HELLO, headers={"x-goog-api-key": "AIza-wrong"})
    error = error_of(wrong)
    assert wrong.status_code == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    bearer = client.post(URL, json=HELLO, headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 401 and error_of(bearer)["status"] == "UNAUTHENTICATED"


def test_unknown_models_and_methods_are_not_found(client: TestClient) -> None:
    missing = post(client, HELLO, "/v1beta/models/gemini-9:generateContent")
    assert missing.status_code == 404
    assert "models/gemini-9 is not found for API version v1beta" in error_of(missing)["message"]
    # A chat model does not embed, an embedding model does not chat.
    embed = {"requests": [{"model": "models/gemini-2.5-flash", "content": {"parts": []}}]}
    assert (
        post(client, embed, "/v1beta/models/gemini-2.5-flash:batchEmbedContents").status_code == 404
    )
    assert (
        post(client, HELLO, "/v1beta/models/text-embedding-004:generateContent").status_code == 404
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"messages": []}, 'Unknown name "messages"'),
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "valid role: user, model",
        ),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "oneof field 'data'"),
        (
            {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},
            "already set",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "@@"}}],
                    }
                ]
            },
            "Base64 decoding failed",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "f", "response": {}}}],
                    },
                ]
            },
            "function response turn comes immediately after a function call turn",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {
                        "role": "user",
                        "parts": [
                            {"functionResponse": {"name": "f", "response": {}}},
                            {"functionResponse": {"name": "f", "response": {}}},
                        ],
                    },
                ]
            },
            "number of function response parts is equal",
        ),
        (
            {
                "contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
                ]
            },
            "function call turn comes immediately after a user turn",
        ),
    ],
)
def test_contents_are_checked(client: TestClient, body: Any, words: str) -> None:
    refused = post(client, body)
    assert refused.status_code == 400
    error = error_of(refused)
    assert error["status"] == "INVALID_ARGUMENT" and words in error["message"]


def tool(parameters: Any) -> dict[str, Any]:
    return {
        **HELLO,
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": parameters}]}],
    }


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": False,
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {"$schema": "x", "type": "object", "properties": {"a": {"type": "string"}}},
            'Unknown name "$schema"',
        ),
        (
            {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
            "cannot start list",
        ),
        ({"type": "object", "properties": {"a": {"const": "x"}}}, 'Unknown name "const"'),
        ({"type": "object", "properties": {}}, "should be non-empty for OBJECT type"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "items: missing field"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
            "property is not defined",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "enum": ["1"]}}},
            "only allowed for STRING",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "format": "uri"}}},
            "'date-time'",
        ),
    ],
)
def test_function_schemas_are_checked(client: TestClient, parameters: Any, words: str) -> None:
    refused = post(client, tool(parameters))
    assert refused.status_code == 400 and words in error_of(refused)["message"]


def test_echo_answer_and_usage(client: TestClient) -> None:
    body = {**HELLO, "systemInstruction": {"parts": [{"text": "be brief"}]}}
    answer = post(client, body).json()
    candidate = answer["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "Echo: hello gemini"}]}
    assert candidate["finishReason"] == "STOP"
    prompt = count_tokens("hello gemini") + count_tokens("be brief")
    assert prompt_tokens(body) == prompt
    assert answer["usageMetadata"] == {
        "promptTokenCount": prompt,
        "candidatesTokenCount": count_tokens("Echo: hello gemini"),
        "totalTokenCount": prompt + count_tokens("Echo: hello gemini"),
    }


def test_function_call_then_answer_from_its_result(client: TestClient) -> None:
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    asked = {
        "contents": [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": parameters}]}],
    }
    call = post(client, asked).json()["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call == {"name": "get_weather", "args": {"city": "weather in Oslo?"}}
    asked["contents"] += [
        {"role": "model", "parts": [{"functionCall": call}]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
            ],
        },
    ]
    answer = post(client, asked).json()
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Echo: sunny"}]
    # Mode ANY calls on every turn, also after function responses.
    again = {**asked, "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}
    recall = post(client, again).json()["candidates"][0]["content"]["parts"][0]
    assert recall["functionCall"] == {"name": "get_weather", "args": {"city": "sunny"}}
    # Mode NONE never calls; ANY with an allowed name always does.
    asked["contents"] = asked["contents"][:1]
    none = {**asked, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    assert "text" in post(client, none).json()["candidates"][0]["content"]["parts"][0]
    plain = {**asked, "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    forced = {
        **plain,
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
    }
    assert "functionCall" in post(client, forced).json()["candidates"][0]["content"]["parts"][0]
    undeclared = {
        **plain,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}},
    }
    assert post(client, undeclared).status_code == 400


def test_thought_signatures_must_come_back_unaltered(client: TestClient) -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    asked: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": parameters}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}},
    }
    url = "/v1beta/models/gemini-3-pro-preview:generateContent"
    parts = post(client, asked, url).json()["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[0]["text"] == "Thinking about: weather?"
    call_part = parts[1]
    result = {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "rain"}}}],
    }
    good = {**asked, "contents": [*asked["contents"], call_part, result]}
    good["contents"][1] = {"role": "model", "parts": [call_part]}
    assert post(client, good, url).status_code == 200
    forged = {**good, "contents": [*good["contents"]]}
    forged["contents"][1] = {"role": "model", "parts": [{**call_part, "thoughtSignature": "AAAA"}]}
    assert "not valid" in error_of(post(client, forged, url))["message"]
    unsigned = {**good, "contents": [*good["contents"]]}
    unsigned["contents"][1] = {
        "role": "model",
        "parts": [{"functionCall": call_part["functionCall"]}],
    }
    assert "missing a thought_signature" in error_of(post(client, unsigned, url))["message"]


def test_safety_block(client: TestClient) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": f"how to {BLOCK_WORD} a process"}]}]}
    answer = post(client, body).json()
    assert "candidates" not in answer
    assert answer["promptFeedback"]["blockReason"] == "SAFETY"
    assert answer["usageMetadata"]["promptTokenCount"] == prompt_tokens(body)


def test_stream_framing_and_usage(client: TestClient) -> None:
    url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    raw = post(client, HELLO, url)
    assert raw.headers["content-type"].startswith("text/event-stream")
    frames = raw.content.split(b"\r\n\r\n")
    assert frames[-1] == b"" and all(f.startswith(b"data: ") for f in frames[:-1])
    events = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert len(events) > 1
    text = "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"])
    assert text == "Echo: hello gemini"
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == count_tokens(text)
    # Without alt=sse the same events come as one JSON array.
    array = post(client, HELLO, url.split("?")[0]).json()
    assert [e["candidates"][0]["content"]["parts"] for e in array] == [
        e["candidates"][0]["content"]["parts"] for e in events
    ]


def test_generation_config_is_checked_and_applied(client: TestClient) -> None:
    assert post(client, {**HELLO, "generationConfig": {"temperature": 3}}).status_code == 400
    assert post(client, {**HELLO, "generationConfig": {"max_tokens": 3}}).status_code == 400
    cut = post(client, {**HELLO, "generationConfig": {"maxOutputTokens": 2}}).json()
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS"
    two = post(client, {**HELLO, "generationConfig": {"candidateCount": 2}}).json()
    assert [c["index"] for c in two["candidates"]] == [0, 1]


def test_batch_embeddings(client: TestClient) -> None:
    url = "/v1beta/models/text-embedding-004:batchEmbedContents"
    body = {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
            for t in ("one", "two")
        ]
    }
    answer = post(client, body, url).json()
    assert [len(e["values"]) for e in answer["embeddings"]] == [768, 768]
    assert answer["embeddings"][0] != answer["embeddings"][1]
    body["requests"][1]["model"] = "models/other"
    assert post(client, body, url).status_code == 400


def test_count_tokens_as_generate_content_reports_its_prompt(client: TestClient) -> None:
    url = "/v1beta/models/gemini-2.5-flash:countTokens"
    contents = [{"role": "user", "parts": [{"text": "count these words"}]}]
    counted = post(client, {"contents": contents}, url)
    assert counted.status_code == 200
    assert counted.json()["totalTokens"] == prompt_tokens({"contents": contents})
    wrapped = {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": contents}}
    assert post(client, wrapped, url).json()["totalTokens"] == counted.json()["totalTokens"]
    both = post(client, {"contents": contents, **wrapped}, url)
    assert both.status_code == 400 and "exclusive" in error_of(both)["message"]
    unnamed = post(client, {"generateContentRequest": {"contents": contents}}, url)
    assert unnamed.status_code == 400
    assert post(client, {"contents": contents, "stream": True}, url).status_code == 400
    assert post(client, {"contents": []}, url).status_code == 400


def test_embed_content_one_content(client: TestClient) -> None:
    url = "/v1beta/models/text-embedding-004:embedContent"
    one = post(client, {"content": {"parts": [{"text": "a dog"}]}, "outputDimensionality": 4}, url)
    assert one.status_code == 200 and len(one.json()["embedding"]["values"]) == 4
    assert post(client, {"content": {"parts": [{"text": "x"}]}, "foo": 1}, url).status_code == 400
    other = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
    assert post(client, other, url).status_code == 400
    assert post(client, {"content": {"parts": []}}, url).status_code == 400
    # A chat model does not embed.
    chat = post(
        client,
        {"content": {"parts": [{"text": "x"}]}},
        URL.replace(":generateContent", ":embedContent"),
    )
    assert chat.status_code == 404
