"""The OpenAI simulator, driven over a real socket with the official openai SDK (and raw
HTTP where the exact wire format is the point)."""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import threading
import time
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openai.types.chat import ChatCompletionChunk, ChatCompletionFunctionToolParam
from starlette.applications import Starlette

from unigate_sim.__main__ import build_parser
from unigate_sim.openai import (
    DEFAULT_MODELS,
    IMAGE_PART_TOKENS,
    count_prompt_tokens,
    count_tokens,
    create_app,
    embedding_vector,
    mask_api_key,
    token_pieces,
)

API_KEY = "sk-sim-" + "t" * 40
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}


class ThreadedServer:
    """Serves an app with uvicorn on a free port from a background thread."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def sse_payloads(body: str) -> list[str]:
    """The data of each server-sent event, checking the framing on the way."""
    assert body.endswith("\n\n")
    events = body[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


def chat_body(*messages: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    """A chat completion request body; one user message unless ``messages`` are given."""
    body: dict[str, Any] = {"model": "gpt-4o-mini"}
    body["messages"] = list(messages) or [{"role": "user", "content": "x"}]
    body.update(arguments)
    return body


# --------------------------------------------------------------------------- tokenizer


def test_count_tokens_uses_openai_o200k_encoding() -> None:
    # Figures of OpenAI's o200k_base (gpt-4o) encoding.
    assert count_tokens("") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("don't") == 1
    assert count_tokens("你好世界") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is plain text here
    assert "".join(token_pieces("Echo: hi  there ")) == "Echo: hi  there "
    assert token_pieces("Echo: hi") == ["Echo", ":", " hi"]
    assert token_pieces("") == []  # an answer a stop sequence cut to nothing
    # A character split across tokens is never split across pieces.
    text = "测试🙂😀 emoji"
    assert "".join(token_pieces(text)) == text


def test_prompt_tokens_formula() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                },
                {"type": "text", "text": "this"},
            ],
        },
    ]
    # Reply priming, then per message: overhead + role + content.
    expected = (
        3
        + (3 + count_tokens("system") + count_tokens("Be brief."))
        + (3 + count_tokens("user") + count_tokens("what is") + count_tokens("this"))
        + IMAGE_PART_TOKENS
    )
    assert count_prompt_tokens(messages) == expected


# --------------------------------------------------------------------------- chat


def test_chat_completion(client: openai.OpenAI, app: Starlette) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": "You are terse."},
        {"role": "user", "content": "hello there, simulator"},
    ]
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    content = "Echo: hello there, simulator"
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.system_fingerprint and resp.system_fingerprint.startswith("fp_")
    choice = resp.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == content
    assert choice.message.refusal is None
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_prompt_tokens(messages)
    assert resp.usage.completion_tokens == count_tokens(content)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 0
    assert resp._request_id is not None
    [call] = app.state.calls
    assert call["path"] == "/v1/chat/completions"
    assert (call["model"], call["stream"], call["status"]) == ("gpt-4o-mini", False, 200)
    assert call["body"]["messages"] == messages


def test_text_parts_are_joined(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            }
        ],
    )
    assert resp.choices[0].message.content == "Echo: one two"


def test_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "a long answer please"}],
        max_tokens=4,
    )
    assert resp.choices[0].message.content == "Echo: a long"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 4


def test_n_and_stop(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "first. second"}],
        n=3,
        stop=["."],
    )
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert {c.message.content for c in resp.choices} == {"Echo: first"}
    assert resp.usage is not None and resp.usage.completion_tokens == 3 * count_tokens(
        "Echo: first"
    )


async def test_stream_with_usage(server: ThreadedServer, app: Starlette) -> None:
    sdk = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.url + "/v1", max_retries=0)
    async with sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream these words back"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "Echo: stream these words back"
    assert len({(c.id, c.created) for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    deltas = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert "".join(d or "" for d in deltas) == text
    assert len(deltas) == count_tokens(text), "one token per chunk"
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == count_tokens(text)
    assert usage_chunk.usage.prompt_tokens == count_prompt_tokens(
        [{"role": "user", "content": "stream these words back"}]
    )
    assert app.state.calls[-1]["stream"] is True


def test_stream_wire_format(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(resp.text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_stream_without_usage(client: openai.OpenAI, http: httpx.Client) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "no usage"}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: no usage"
    resp = http.post("/v1/chat/completions", json=chat_body(stream=True))
    payloads = sse_payloads(resp.text)
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in json.loads(p) for p in payloads[:-1])


# --------------------------------------------------------------------------- tools


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"city": "What's the weather in Paris?", "unit": "celsius"}
    assert resp.usage is not None
    assert resp.usage.completion_tokens == count_tokens("get_weather") + count_tokens(
        call.function.arguments
    )

    messages.append(choice.message)  # as OpenAI's function-calling guide does
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    final = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Echo: sunny, 21C"

    # A forced choice calls again after the results (OpenAI honours it on every turn), the
    # arguments made up from them. The tool message may name its function, as OpenAI's
    # function-calling guide wrote it.
    messages[-1]["name"] = "get_weather"
    for forced in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        again = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], tool_choice=forced
        )
        assert again.choices[0].finish_reason == "tool_calls"
        [recall] = again.choices[0].message.tool_calls or []
        assert json.loads(recall.function.arguments)["city"] == "sunny, 21C"


def test_tools_without_weather_answer_in_text(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]
    )
    assert resp.choices[0].message.content == "Echo: hi"
    assert resp.choices[0].message.tool_calls is None


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    chunks = list(stream)
    first = (chunks[0].choices[0].delta.tool_calls or [])[0]
    assert first.index == 0 and first.id and first.id.startswith("call_")
    assert first.function is not None and first.function.name == "get_weather"
    arguments = "".join(argument_fragment(chunk) for chunk in chunks[1:-1])
    assert json.loads(arguments) == {"city": "weather in Oslo", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def argument_fragment(chunk: ChatCompletionChunk) -> str:
    """The tool call arguments a stream chunk carries."""
    [call] = chunk.choices[0].delta.tool_calls or []
    assert call.index == 0 and call.id is None
    return (call.function.arguments if call.function else None) or ""


def test_tool_message_must_answer_a_tool_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_x", "content": "result"},
            ],
        )
    assert info.value.param == "messages.[1].role"


# --------------------------------------------------------------------------- validation


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert error_of(info.value) == {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def test_missing_messages_is_400(client: openai.OpenAI, app: Starlette) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        # The SDK insists on messages; omit makes it send a body without them.
        client.chat.completions.create(model="gpt-4o-mini", messages=openai.omit)  # type: ignore[call-overload]
    error = error_of(info.value)
    assert (error["param"], error["code"]) == ("messages", "missing_required_parameter")
    assert app.state.calls[-1]["status"] == 400


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [user("x")]}, None, None),
        (chat_body(messages=[]), "messages", "empty_array"),
        (chat_body({"role": "bot", "content": "x"}), "messages[0].role", "invalid_value"),
        (chat_body({"content": "x"}), "messages[0].role", "missing_required_parameter"),
        (chat_body(user(1)), "messages[0].content", "invalid_type"),
        (chat_body(user([{"type": "video"}])), "messages[0].content[0].type", "invalid_value"),
        (
            chat_body(user([{"type": "image_url", "image_url": {}}])),
            "messages[0].content[0].image_url.url",
            "missing_required_parameter",
        ),
        (chat_body({"role": "assistant", "content": None}), "messages.[0].content", None),
        (chat_body({"role": "tool", "content": "x"}), "messages.[0].tool_call_id", None),
        (chat_body({**user("x"), "extra": 1}), "messages[0].extra", "unknown_parameter"),
        (chat_body(max_tokens=0), "max_tokens", "integer_below_min_value"),
        (chat_body(max_tokens=10**6), "max_tokens", "invalid_value"),
        (chat_body(max_completion_tokens="9"), "max_completion_tokens", "invalid_type"),
        (chat_body(stream="yes"), "stream", "invalid_type"),
        (chat_body(stream_options={"include_usage": True}), "stream_options", None),
        (chat_body(n=0), "n", "integer_below_min_value"),
        (chat_body(temperature=3), "temperature", "decimal_above_max_value"),
        (chat_body(tool_choice="auto"), "tool_choice", None),
        (chat_body(response_format={"type": "json_object"}), "messages", None),
        (chat_body(user("x " * 130_000)), "messages", "context_length_exceeded"),
    ],
)
def test_invalid_chat_requests_are_400(
    http: httpx.Client, body: dict[str, Any], param: str | None, code: str | None
) -> None:
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


def test_unrecognized_argument_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"not_a_real_argument": 1},
        )
    assert error_of(info.value)["message"] == (
        "Unrecognized request argument supplied: not_a_real_argument"
    )


def test_documented_arguments_are_accepted(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "json please"}],
        temperature=0.5,
        top_p=0.9,
        presence_penalty=0.1,
        frequency_penalty=-0.1,
        logit_bias={"50256": -100},
        seed=7,
        user="u-1",
        store=False,
        metadata={"k": "v"},
        service_tier="auto",
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=2,
    )
    choice = resp.choices[0]
    assert json.loads(choice.message.content or "") == {"content": "Echo: json please"}
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)


def test_body_must_be_json(http: httpx.Client) -> None:
    for headers, content in [
        ({"Content-Type": "application/json"}, b"{not json"),
        ({"Content-Type": "text/plain"}, b'{"model": "gpt-4o-mini"}'),
    ]:
        resp = http.post("/v1/chat/completions", content=content, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["message"].startswith("We could not parse the JSON body")


def test_embedding_model_is_not_a_chat_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="text-embedding-3-small", messages=[{"role": "user", "content": "x"}]
        )
    assert error_of(info.value)["param"] == "model"


# --------------------------------------------------------------------------- auth and routing


def test_wrong_key_is_401(server: ThreadedServer, app: Starlette) -> None:
    bad = openai.OpenAI(
        api_key="sk-" + "x" * 44 + "wxyz", base_url=server.url + "/v1", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    error = error_of(info.value)
    assert error["code"] == "invalid_api_key"
    assert error["message"] == (
        f"Incorrect API key provided: sk-xxxxx{'*' * 39}wxyz. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )
    assert app.state.calls == [], "refused requests are not recorded"


def test_missing_key_is_401(server: ThreadedServer, app: Starlette) -> None:
    resp = httpx.post(server.url + "/v1/embeddings", json={"model": "text-embedding-3-small"})
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["message"].startswith("You didn't provide an API key.")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)


def test_mask_api_key() -> None:
    assert mask_api_key("sk-abc1234567890wxyz") == "sk-abc12********wxyz"
    assert mask_api_key("short") == "short"


def test_unknown_path_and_wrong_method(http: httpx.Client, app: Starlette) -> None:
    resp = http.post("/v1/xyz", json={})
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {
            "message": "Invalid URL (POST /v1/xyz)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    resp = http.get("/v1/chat/completions")
    assert resp.status_code == 405
    assert resp.json()["error"]["message"] == "Invalid method for URL (GET /v1/chat/completions)"
    assert app.state.calls == []


# --------------------------------------------------------------------------- fault injection


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_fail_next_is_answered_once(
    client: openai.OpenAI, app: Starlette, status: int, error_class: type[openai.APIStatusError]
) -> None:
    failure = {
        "error": {"message": "injected", "type": "server_error", "param": None, "code": None}
    }
    app.state.fail_next.append((status, failure))
    with pytest.raises(error_class) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == status
    assert info.value.response.json() == failure
    ok = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert ok.choices[0].message.content == "Echo: x"
    assert [c["status"] for c in app.state.calls] == [status, 200]
    assert app.state.fail_next == []


# --------------------------------------------------------------------------- embeddings


def test_embeddings_base64_default(client: openai.OpenAI, http: httpx.Client) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input=["first text", "second"])
    assert [d.index for d in resp.data] == [0, 1]
    vectors = [d.embedding for d in resp.data]
    assert all(len(v) == 1536 for v in vectors)
    assert all(math.isclose(math.hypot(*v), 1.0, abs_tol=1e-5) for v in vectors)
    assert vectors[0] != vectors[1]
    assert vectors[0] == embedding_vector("text-embedding-3-small", "first text", 1536)
    assert resp.usage.prompt_tokens == count_tokens("first text") + count_tokens("second")
    assert resp.usage.total_tokens == resp.usage.prompt_tokens

    raw = http.post(
        "/v1/embeddings",
        json={
            "model": "text-embedding-3-small",
            "input": "first text",
            "encoding_format": "base64",
        },
    ).json()["data"][0]["embedding"]
    decoded = list(struct.unpack("<1536f", base64.b64decode(raw)))
    assert decoded == vectors[0]


def test_embeddings_float_and_dimensions(client: openai.OpenAI) -> None:
    full = (
        client.embeddings.create(
            model="text-embedding-3-large", input="same text", encoding_format="float"
        )
        .data[0]
        .embedding
    )
    assert len(full) == 3072 and math.isclose(math.hypot(*full), 1.0, abs_tol=1e-5)
    short = (
        client.embeddings.create(model="text-embedding-3-large", input="same text", dimensions=256)
        .data[0]
        .embedding
    )
    assert len(short) == 256 and math.isclose(math.hypot(*short), 1.0, abs_tol=1e-5)
    # A shortened embedding is the full one cut short and renormalised.
    scale = math.hypot(*full[:256])
    assert all(math.isclose(a / scale, b, abs_tol=1e-5) for a, b in zip(full, short, strict=False))


def test_embeddings_of_token_arrays(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(resp.data) == 2
    assert resp.usage.prompt_tokens == 5


SMALL = "text-embedding-3-small"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": SMALL, "input": ""}, 400, None),
        ({"model": SMALL, "input": []}, 400, None),
        ({"model": SMALL, "input": ["ok", ""]}, 400, None),
        ({"model": SMALL, "input": ["ok", 1]}, 400, None),
        ({"model": SMALL, "input": ["x"] * 2049}, 400, "input"),
        ({"model": SMALL}, 400, "input"),
        ({"model": SMALL, "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": SMALL, "input": "x", "dimensions": 1537}, 400, "dimensions"),
        ({"model": SMALL, "input": "x", "extra": 1}, 400, None),
        ({"model": "gpt-4o-mini", "input": "x"}, 403, None),
        ({"model": "text-embedding-9", "input": "x"}, 404, None),
    ],
)
def test_invalid_embedding_requests(
    http: httpx.Client, body: dict[str, Any], status: int, param: str | None
) -> None:
    resp = http.post("/v1/embeddings", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


def test_chat_model_cannot_embed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="gpt-4o-mini", input="x")


# --------------------------------------------------------------------------- models and CLI


def test_models(client: openai.OpenAI, app: Starlette) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == list(DEFAULT_MODELS)
    assert ids[:5] == [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-3.5-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ]
    model = client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "system")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-9")
    assert error_of(info.value)["code"] == "model_not_found"
    assert [c["model"] for c in app.state.calls] == [None, "gpt-4o", "gpt-9"]


def test_custom_model_list() -> None:
    with ThreadedServer(create_app({API_KEY}, ["my-model"])) as running:
        sdk = openai.OpenAI(api_key=API_KEY, base_url=running.url + "/v1", max_retries=0)
        with sdk:
            assert [m.id for m in sdk.models.list()] == ["my-model"]
            with pytest.raises(openai.NotFoundError):
                sdk.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
                )


def test_cli_arguments() -> None:
    args = build_parser().parse_args(
        ["openai", "--port", "8901", "--api-key", "sk-a", "--api-key", "sk-b", "--models", "a, b"]
    )
    assert (args.provider, args.host, args.port) == ("openai", "127.0.0.1", 8901)
    assert (args.api_keys, args.models) == (["sk-a", "sk-b"], ["a", "b"])
    library = build_parser().parse_args(["aiproxy-library", "--api-key", "k", "--library", "7"])
    assert (library.port, library.api_keys, library.libraries) == (8917, ["k"], ["7"])
    assert build_parser().parse_args(["fastgpt", "--api-key", "fastgpt-k"]).port == 8918
