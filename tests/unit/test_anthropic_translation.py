"""OpenAI ⇄ Anthropic conversions, checked against both strict simulators' validators.

Properties (hypothesis):

* any valid OpenAI chat request (the OpenAI simulator accepts it) converts to an Anthropic
  request the Anthropic simulator accepts;
* the simulated Claude's answers (message and stream) convert back to OpenAI's shapes without
  losing text, thinking, tool calls or usage;
* any valid Anthropic request converts to an OpenAI request the OpenAI simulator accepts, and
  back to an equivalent Anthropic request;
* OpenAI answers and streams convert to Anthropic's message and event sequence and back
  unchanged.
"""

from __future__ import annotations

import base64
import string
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.request import PLACEHOLDER_USER_TEXT, chat_to_messages
from unigate_relay.providers.anthropic.response import message_to_chat, usage_from_anthropic
from unigate_relay.providers.anthropic.stream import ChatStreamTranslator, parse_event
from unigate_relay.sse import SSESplitter, event_data
from unigate_relay.translate.request import messages_to_chat
from unigate_relay.translate.response import chat_to_message
from unigate_relay.translate.stream import MessagesStreamWriter
from unigate_sim.anthropic import DEFAULT_MODELS, parse_messages_request
from unigate_sim.anthropic.render import render_events, render_message
from unigate_sim.anthropic.reply import plan_reply
from unigate_sim.anthropic.usage import cached_input
from unigate_sim.openai.chat_request import parse_chat_request

CLAUDE = "claude-sonnet-4-20250514"
GPT = "gpt-4o"
CLAUDES = frozenset(DEFAULT_MODELS)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 24).decode()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text of any kind, including blank and whitespace-only strings, which Anthropic refuses
# where OpenAI does not.
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\n", "hello", "weather in Oslo", "use all tools"]),
)
words = st.text(string.ascii_letters + " ", min_size=1, max_size=30).filter(str.strip)
names = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
ids = st.text(string.ascii_letters + string.digits + "_-:.", min_size=1, max_size=16)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(names, json_values, max_size=3)


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


openai_user_content = st.one_of(
    texts,
    st.lists(
        st.one_of(
            texts.map(lambda t: {"type": "text", "text": t}),
            st.sampled_from(
                [
                    image_part(f"data:image/png;base64,{PNG}"),
                    image_part("https://example.com/cat.png"),
                ]
            ),
        ),
        min_size=1,
        max_size=3,
    ),
)


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A chat request the OpenAI simulator accepts: system/developer messages anywhere,
    user turns, assistant answers or tool calls answered by tool messages."""
    tool_names = draw(st.lists(names, min_size=0, max_size=3, unique=True))
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["system", "user", "user", "assistant", "tools"]))
        if kind == "system":
            role = draw(st.sampled_from(["system", "developer"]))
            messages.append({"role": role, "content": draw(texts)})
        elif kind == "user":
            messages.append({"role": "user", "content": draw(openai_user_content)})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(texts)})
        elif tool_names:
            calls = [
                {
                    "id": draw(ids),
                    "type": "function",
                    "function": {
                        "name": draw(st.sampled_from(tool_names)),
                        "arguments": orjson.dumps(draw(arguments)).decode(),
                    },
                }
                for _ in range(draw(st.integers(1, 3)))
            ]
            if len({c["id"] for c in calls}) < len(calls):
                continue
            content = draw(st.one_of(st.none(), texts))
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
            for call in calls:
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": draw(texts)}
                )
    if not messages:
        messages.append({"role": "user", "content": draw(texts)})
    request: dict[str, Any] = {"model": GPT, "messages": messages}
    if tool_names:
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": draw(words),
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
            for name in tool_names
        ]
        request["tool_choice"] = draw(
            st.sampled_from(
                [
                    "auto",
                    "required",
                    "none",
                    {"type": "function", "function": {"name": tool_names[0]}},
                ]
            )
        )
        if draw(st.booleans()):
            request["parallel_tool_calls"] = draw(st.booleans())
    for name, values in (
        ("temperature", st.floats(0, 2)),
        ("top_p", st.floats(0, 1)),
        ("max_tokens", st.integers(1, 8000)),
        ("max_completion_tokens", st.integers(1, 8000)),
        ("stop", st.one_of(texts, st.lists(texts, min_size=1, max_size=4))),
        ("reasoning_effort", st.sampled_from(["low", "medium", "high"])),
        ("user", words),
        ("stream", st.booleans()),
    ):
        if draw(st.booleans()):
            request[name] = draw(values)
    return request


@SETTINGS
@given(openai_requests())
def test_valid_openai_requests_become_valid_anthropic_requests(chat: dict[str, Any]) -> None:
    if chat.get("reasoning_effort"):
        # OpenAI takes reasoning_effort only for its reasoning models.
        parse_chat_request({**chat, "model": "gpt-4o", "reasoning_effort": None}, [GPT])
    else:
        parse_chat_request(chat, [GPT])
    converted = chat_to_messages(chat, CLAUDE)
    parsed = parse_messages_request(converted, CLAUDES)
    # Nothing the model should see is lost: every non-blank text arrives, in order.
    system_texts = [
        m["content"]
        for m in chat["messages"]
        if m["role"] in ("system", "developer") and m["content"].strip()
    ]
    assert converted.get("system", "") == "\n\n".join(system_texts)
    sent = [
        b["text"]
        for m in converted["messages"]
        for b in m["content"]
        if b["type"] == "text" and b["text"] != PLACEHOLDER_USER_TEXT
    ]
    expected = []
    for m in chat["messages"]:
        if m["role"] in ("user", "assistant"):
            content = m["content"]
            parts = [content] if isinstance(content, str) else content or []
            for part in parts:
                text = part if isinstance(part, str) else part.get("text")
                # A text that is the placeholder itself cannot be told from one (filtered
                # from what was sent above), so it is left out here too.
                if isinstance(text, str) and text.strip() and text != PLACEHOLDER_USER_TEXT:
                    expected.append(text)
    assert [t.rstrip() for t in sent] == [t.rstrip() for t in expected]
    calls = [c for m in chat["messages"] for c in m.get("tool_calls") or []]
    uses = [b for m in converted["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert [(u["name"], u["input"]) for u in uses] == [
        (c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls
    ]
    assert parsed.max_tokens == converted["max_tokens"]


def reassembled(frames: list[bytes]) -> tuple[str, str, list[dict[str, Any]], str | None, Any]:
    """(content, reasoning, tool calls, finish reason, usage) of OpenAI chunk frames."""
    content, reasoning, finish, usage = "", "", None, None
    calls: dict[int, dict[str, Any]] = {}
    for frame in frames:
        data = event_data(frame.strip())
        if data is None or data == b"[DONE]":
            continue
        chunk = orjson.loads(data)
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(
                    call["index"], {"id": call.get("id"), "name": "", "arguments": ""}
                )
                entry["name"] += call.get("function", {}).get("name") or ""
                entry["arguments"] += call.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return content, reasoning, [calls[i] for i in sorted(calls)], finish, usage


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in SSESplitter().feed(raw):
        data = event_data(frame)
        assert data is not None
        event = parse_event(data)
        assert event is not None
        events.append(event)
    return events


@SETTINGS
@given(openai_requests(), st.booleans())
def test_simulated_claude_answers_come_back_whole(chat: dict[str, Any], cached: bool) -> None:
    converted = chat_to_messages(chat, CLAUDE)
    parsed = parse_messages_request(converted, CLAUDES)
    reply = plan_reply(parsed)
    cache: set[str] = set()
    if cached:
        cached_input(parsed, cache)
    prompt = cached_input(parsed, set(cache))
    answer = render_message(parsed, reply, prompt)
    message, finish, usage = message_to_chat(answer)
    text = "".join(b["text"] for b in answer["content"] if b["type"] == "text")
    thought = "".join(b["thinking"] for b in answer["content"] if b["type"] == "thinking")
    uses = [b for b in answer["content"] if b["type"] == "tool_use"]
    assert (message["content"] or "") == text
    assert message.get("reasoning_content", "") == thought
    assert [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls", [])
    ] == [(u["id"], u["name"], u["input"]) for u in uses]
    assert (
        finish
        == {
            "end_turn": "stop",
            "tool_use": "tool_calls",
            "max_tokens": "length",
            "stop_sequence": "stop",
        }[answer["stop_reason"]]
    )
    raw = answer["usage"]
    assert usage.prompt_tokens == (
        raw["input_tokens"] + raw["cache_read_input_tokens"] + raw["cache_creation_input_tokens"]
    )
    assert usage.cached_tokens == raw["cache_read_input_tokens"]
    assert usage.completion_tokens == raw["output_tokens"]

    # The same answer streamed: the chunks carry the same text, calls, finish and usage.
    translator = ChatStreamTranslator(id="chatcmpl-x", model=CLAUDE, created=1, include_usage=True)
    frames = []
    for frame in render_events(parsed, reply, prompt):
        for event in anthropic_events(frame):
            frames.extend(translator.feed(event))
    assert translator.finished and frames[-1] == b"data: [DONE]\n\n"
    content, reasoning, calls, stream_finish, stream_usage = reassembled(frames)
    assert (content, reasoning, stream_finish) == (text, thought, finish)
    assert [(c["id"], c["name"], orjson.loads(c["arguments"])) for c in calls] == [
        (u["id"], u["name"], u["input"]) for u in uses
    ]
    assert translator.usage() == usage
    assert stream_usage["prompt_tokens"] == usage.prompt_tokens
    assert (
        stream_usage.get("prompt_tokens_details", {}).get("cached_tokens", 0) == usage.cached_tokens
    )


anthropic_text = words.map(lambda t: {"type": "text", "text": t})
anthropic_image = st.sampled_from(
    [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
)


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A Messages request the Anthropic simulator accepts: alternating turns, tool loops."""
    tool_names = draw(st.lists(names, max_size=3, unique=True))
    turns: list[dict[str, Any]] = []
    pending: list[str] = []
    for i in range(draw(st.integers(0, 3))):
        results = [
            {"type": "tool_result", "tool_use_id": p, "content": draw(words)} for p in pending
        ]
        user = results + draw(
            st.lists(anthropic_text | anthropic_image, min_size=0 if results else 1, max_size=2)
        )
        turns.append({"role": "user", "content": user})
        blocks: list[dict[str, Any]] = draw(st.lists(anthropic_text, max_size=1))
        pending = []
        if tool_names and draw(st.booleans()):
            for j in range(draw(st.integers(1, 2))):
                tool_use_id = f"toolu_{i}_{j}"
                pending.append(tool_use_id)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tool_use_id,
                        "name": draw(st.sampled_from(tool_names)),
                        "input": draw(arguments),
                    }
                )
        if not blocks:
            blocks = [draw(anthropic_text)]
        turns.append({"role": "assistant", "content": blocks})
    results = [{"type": "tool_result", "tool_use_id": p, "content": draw(words)} for p in pending]
    last = results + draw(
        st.lists(anthropic_text | anthropic_image, min_size=0 if results else 1, max_size=2)
    )
    turns.append({"role": "user", "content": last})
    request: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": draw(st.integers(1, 4000)),
        "messages": turns,
    }
    if draw(st.booleans()):
        request["system"] = draw(st.one_of(words, st.lists(anthropic_text, min_size=1, max_size=2)))
    if tool_names:
        request["tools"] = [
            {
                "name": n,
                "description": draw(words),
                "input_schema": {"type": "object", "properties": {}},
            }
            for n in tool_names
        ]
        request["tool_choice"] = draw(
            st.sampled_from(
                [
                    {"type": "auto"},
                    {"type": "any"},
                    {"type": "none"},
                    {"type": "tool", "name": tool_names[0]},
                    {"type": "auto", "disable_parallel_tool_use": True},
                ]
            )
        )
    if draw(st.booleans()):
        request["stop_sequences"] = draw(st.lists(words, min_size=1, max_size=3))
    if draw(st.booleans()):
        request["temperature"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        request["stream"] = True
    return request


def normalized(request: dict[str, Any]) -> tuple[str, list[Any]]:
    """What a request means to the model, up to representation: system text, and per turn
    its blocks, with an assistant's texts joined and tool results as text."""
    system = request.get("system") or ""
    if isinstance(system, list):
        system = "\n".join(b["text"] for b in system)
    turns = []
    for turn in request["messages"]:
        content = turn["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out: list[Any] = []
        for block in blocks:
            if block["type"] == "tool_result":
                inner = block.get("content") or ""
                text = inner if isinstance(inner, str) else "\n".join(b["text"] for b in inner)
                out.append(("tool_result", block["tool_use_id"], text))
            elif (
                block["type"] == "text"
                and turn["role"] == "assistant"
                and out
                and out[-1][0] == "text"
            ):
                out[-1] = ("text", out[-1][1] + block["text"])
            elif block["type"] == "text":
                out.append(("text", block["text"]))
            elif block["type"] == "image":
                out.append(("image", orjson.dumps(block["source"], option=orjson.OPT_SORT_KEYS)))
            else:
                out.append((block["type"], block["id"], block["name"], block["input"]))
        turns.append((turn["role"], out))
    return system, turns


@SETTINGS
@given(anthropic_requests())
def test_anthropic_requests_round_trip_through_openai(request: dict[str, Any]) -> None:
    parse_messages_request(request, CLAUDES)
    chat = messages_to_chat(request, GPT)
    parse_chat_request(chat, [GPT])
    back = chat_to_messages(chat, CLAUDE)
    parse_messages_request(back, CLAUDES)
    assert normalized(back) == normalized(request)
    assert back["max_tokens"] == request["max_tokens"]
    assert back.get("stop_sequences") == request.get("stop_sequences")
    assert back.get("tool_choice") == request.get("tool_choice")


@st.composite
def openai_answers(draw: st.DrawFn) -> tuple[dict[str, Any], common_pb2.Usage]:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()},
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": draw(st.one_of(st.none(), words)) if calls else draw(words),
    }
    if calls:
        message["tool_calls"] = calls
    if draw(st.booleans()):
        message["reasoning_content"] = draw(words)
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length", "content_filter"]))
    prompt = draw(st.integers(0, 10_000))
    usage = common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=draw(st.integers(0, 5000)),
        cached_tokens=draw(st.integers(0, prompt)),
    )
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    completion = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    return completion, usage


def openai_chunks(message: dict[str, Any], finish: str) -> list[dict[str, Any]]:
    """How an OpenAI provider streams ``message``: role, reasoning, text in pieces, each tool
    call's id/name then its arguments in pieces, the finish chunk."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    reasoning = message.get("reasoning_content") or ""
    deltas += [{"reasoning_content": reasoning[i : i + 3]} for i in range(0, len(reasoning), 3)]
    content = message.get("content") or ""
    deltas += [{"content": content[i : i + 4]} for i in range(0, len(content), 4)]
    for index, call in enumerate(message.get("tool_calls") or []):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = call["function"]["arguments"]
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 5]}}]}
            for i in range(0, len(arguments), 5)
        ]
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return chunks


@SETTINGS
@given(openai_answers())
def test_openai_answers_round_trip_through_anthropic(
    answer: tuple[dict[str, Any], common_pb2.Usage],
) -> None:
    completion, usage = answer
    original = completion["choices"][0]["message"]
    finish = completion["choices"][0]["finish_reason"]
    message = chat_to_message(completion, CLAUDE, usage)
    assert (
        message["usage"]["input_tokens"] + message["usage"]["cache_read_input_tokens"]
        == usage.prompt_tokens
    )
    back, back_finish, back_usage = message_to_chat(message)
    assert back_finish == finish
    assert (back["content"] or "") == (original["content"] or "")
    assert back.get("reasoning_content") == original.get("reasoning_content")
    assert [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in back.get("tool_calls", [])
    ] == [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in original.get("tool_calls", [])
    ]
    assert (back_usage.prompt_tokens, back_usage.completion_tokens, back_usage.cached_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
    )
    assert usage_from_anthropic(message["usage"]) == back_usage

    # Streamed: OpenAI chunks → Anthropic events → OpenAI chunks, nothing lost.
    writer = MessagesStreamWriter(CLAUDE, 0)
    raw = writer.start() + b"".join(writer.feed(c) for c in openai_chunks(original, finish))
    raw += writer.finish(usage)
    events = anthropic_events(raw)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    opened = [e["index"] for e in events if e["type"] == "content_block_start"]
    closed = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert opened == closed == list(range(len(opened)))
    translator = ChatStreamTranslator(id="chatcmpl-x", model=CLAUDE, created=1, include_usage=True)
    frames = [f for e in events for f in translator.feed(e)]
    content, reasoning, calls, stream_finish, stream_usage = reassembled(frames)
    assert content == (original["content"] or "")
    assert reasoning == (original.get("reasoning_content") or "")
    assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in original.get("tool_calls", [])
    ]
    assert stream_finish == finish
    assert translator.usage() == back_usage
    assert stream_usage["completion_tokens"] == usage.completion_tokens
