"""OpenAI chat requests as PaLM ``generateMessage`` bodies, and PaLM's answers read."""

from __future__ import annotations

from typing import Any

import pytest

from unigate_relay.providers.palm.wire import (
    Unsupported,
    candidate_texts,
    filtered,
    message_body,
    message_path,
)


def test_system_to_context_authors_and_merged_turns() -> None:
    chat: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No jokes."}]},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "user", "content": "d"},
        ],
        "temperature": 2,
        "top_p": 0.5,
        "top_k": 3,
        "n": 4,
        "max_tokens": 100,
        "stop": ["x"],
    }
    assert message_body(chat) == {
        "prompt": {
            "context": "Be brief.\n\nNo jokes.",
            "messages": [
                {"author": "0", "content": "a\n\nb"},
                {"author": "1", "content": "c"},
                {"author": "0", "content": "d"},
            ],
        },
        "temperature": 1.0,
        "topP": 0.5,
        "topK": 3,
        "candidateCount": 4,
    }


def test_paths() -> None:
    assert message_path("PaLM-2") == "/v1beta2/models/chat-bison-001:generateMessage"
    assert message_path("chat-bison-001") == "/v1beta2/models/chat-bison-001:generateMessage"


@pytest.mark.parametrize(
    ("chat", "words"),
    [
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "system", "content": "x"}]}, "at least one user"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "'tool' turns"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 9}, "1 to 8"),
        ({"messages": [{"role": "user", "content": "x"}], "n": True}, "1 to 8"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "1"}, "number"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "no tools"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "text only",
        ),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{}]}]},
            "no tools",
        ),
    ],
)
def test_what_palm_cannot_take(chat: dict[str, Any], words: str) -> None:
    with pytest.raises(Unsupported, match=words):
        message_body(chat)


def test_answers_read() -> None:
    answer = {"candidates": [{"author": "1", "content": "x"}, {"author": "1", "content": "y"}]}
    assert candidate_texts(answer) == ["x", "y"] and not filtered(answer)
    withheld: dict[str, Any] = {"messages": [], "filters": [{"reason": "OTHER"}]}
    assert candidate_texts(withheld) is None and filtered(withheld)
    assert candidate_texts({"candidates": [{"author": "1"}]}) is None
    assert not filtered({})
