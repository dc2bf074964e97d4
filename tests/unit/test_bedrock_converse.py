"""Bedrock Converse on the relay's side: OpenAI chat requests as Converse bodies, and the
ConverseStream events (encoded by the simulator, in any split of the bytes) as OpenAI chunks
with Bedrock's usage."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.providers.bedrock.converse_reply import ConverseStreamTranslator
from unigate_relay.providers.bedrock.converse_request import converse_body
from unigate_relay.providers.bedrock.eventstream import ConverseEventReader, StreamException
from unigate_relay.providers.bedrock.wire import is_claude, model_id
from unigate_sim.bedrock.eventstream import converse_event, exception_event

CALL = {"id": "tooluse_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_tool_results_and_user_text_merge_into_one_user_turn() -> None:
    body = converse_body(
        {
            "messages": [
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "r"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_completion_tokens": 9,
            "top_p": 0.5,
        }
    )
    assert body["system"] == [{"text": "rules"}]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "r"}], "status": "success"}},
        {"text": "b"},
    ]
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    assert body["inferenceConfig"] == {"maxTokens": 9, "topP": 0.5}


@pytest.mark.parametrize(
    "chat",
    [
        {"messages": []},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        },
        # A tool conversation replayed without its tools: Converse refuses the blocks.
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "tool_calls": [CALL]},
            ]
        },
    ],
)
def test_what_converse_cannot_take_is_refused(chat: dict[str, Any]) -> None:
    with pytest.raises(ConversionError):
        converse_body(chat)


def test_which_models_go_through_converse() -> None:
    assert is_claude(model_id("claude-3-5-sonnet-20241022", {}))
    assert is_claude("us.anthropic.claude-sonnet-4-20250514-v1:0")
    assert not is_claude(model_id("llama3-8b-8192", {}))
    assert model_id("llama3-8b-8192", {}) == "meta.llama3-8b-instruct-v1:0"
    assert not is_claude("amazon.nova-pro-v1:0")


EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "é✓ hi"}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    (
        "contentBlockStart",
        {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}},
    ),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a":'}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
    ("messageStop", {"stopReason": "tool_use"}),
    (
        "metadata",
        {
            "usage": {
                "inputTokens": 11,
                "outputTokens": 5,
                "totalTokens": 16,
                "cacheReadInputTokens": 4,
            },
            "metrics": {"latencyMs": 3},
        },
    ),
]


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_stream_in_any_split(sizes: list[int]) -> None:
    raw = b"".join(converse_event(kind, event) for kind, event in EVENTS)
    reader = ConverseEventReader()
    translator = ConverseStreamTranslator(id="c", model="m", created=1)
    frames = b""
    at, i = 0, 0
    while at < len(raw):
        size = sizes[i % len(sizes)]
        for item in reader.feed(raw[at : at + size]):
            assert not isinstance(item, StreamException)
            frames += translator.feed(item)
        at, i = at + size, i + 1
    chunks = [orjson.loads(f[6:]) for f in frames.split(b"\n\n") if f.startswith(b"data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content") or "" for d in deltas) == "é✓ hi"
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert calls[0]["id"] == "t" and calls[0]["function"]["name"] == "f"
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"a":1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.finished and translator.usage is not None
    usage = translator.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (15, 5, 4)


def test_an_exception_event_ends_the_stream() -> None:
    raw = converse_event("messageStart", {"role": "assistant"}) + exception_event(
        "throttlingException", "Slow down"
    )
    items = list(ConverseEventReader().feed(raw))
    assert items[-1] == StreamException("throttlingException", "Slow down")
