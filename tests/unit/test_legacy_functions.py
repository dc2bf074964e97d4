"""Answers to legacy ``functions`` requests in their own shape (``translate/legacy_functions``):
whole completions and stream frames of translated families, turned back into
``function_call``."""

from __future__ import annotations

import orjson

from unigate_relay.translate.legacy_functions import (
    legacy_completion,
    legacy_frame,
    uses_legacy_functions,
)


def test_only_requests_offering_functions_and_no_tools_are_legacy() -> None:
    fn = {"name": "f", "parameters": {"type": "object"}}
    assert uses_legacy_functions(orjson.dumps({"functions": [fn], "messages": []}))
    tools = [{"type": "function", "function": fn}]
    assert not uses_legacy_functions(orjson.dumps({"functions": [fn], "tools": tools}))
    assert not uses_legacy_functions(orjson.dumps({"functions": [], "messages": []}))
    assert not uses_legacy_functions(b'{"functions": [')
    assert not uses_legacy_functions(orjson.dumps({"messages": ["functions"]}))


def test_a_completion_keeps_the_first_call_as_its_function_call() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    other = {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    body = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call, other]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3},
    }
    out = orjson.loads(legacy_completion(orjson.dumps(body)))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "f", "arguments": '{"a":1}'},
    }
    assert out["usage"] == {"prompt_tokens": 3}
    # Text answers and unreadable bodies are left alone.
    text = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
    assert orjson.loads(legacy_completion(orjson.dumps(text))) == text
    assert legacy_completion(b"not json") == b"not json"


def test_stream_pieces_of_the_first_call_become_function_call_pieces() -> None:
    def frame(delta: dict[str, object], finish: str | None = None) -> bytes:
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(chunk)

    opened = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    second = {"index": 1, "id": "c2", "type": "function", "function": {"name": "g"}}
    frames = [
        frame({"tool_calls": [opened]}),
        frame({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}, second]}),
        frame({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        frame({}, "tool_calls"),
    ]
    deltas, finishes = [], []
    for f in frames:
        choice = orjson.loads(legacy_frame(f)[len(b"data: ") :])["choices"][0]
        deltas.append(choice["delta"])
        finishes.append(choice["finish_reason"])
    assert deltas == [
        {"function_call": {"name": "f", "arguments": ""}},
        {"function_call": {"arguments": '{"a":'}},
        {"function_call": {"arguments": "1}"}},
        {},
    ]
    assert finishes == [None, None, None, "function_call"]
    assert legacy_frame(b"data: [DONE]") == b"data: [DONE]"
