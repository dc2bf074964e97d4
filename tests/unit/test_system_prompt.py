from __future__ import annotations

import orjson

from unigate_relay.system_prompt import with_system_prompt


def test_chat_gets_a_system_message_first() -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    out = orjson.loads(with_system_prompt("chat.completions", body, "Be kind."))
    assert out["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
    ]
    assert with_system_prompt("chat.completions", body, "") is body


def test_responses_and_messages_get_it_before_their_instructions() -> None:
    responses = orjson.dumps({"model": "m", "input": "hi", "instructions": "Be brief."})
    out = orjson.loads(with_system_prompt("responses", responses, "Be kind."))
    assert out["instructions"] == "Be kind.\n\nBe brief."
    plain = orjson.loads(with_system_prompt("messages", orjson.dumps({"messages": []}), "Be kind."))
    assert plain["system"] == "Be kind."
    blocks = orjson.dumps({"system": [{"type": "text", "text": "Be brief."}], "messages": []})
    out = orjson.loads(with_system_prompt("messages", blocks, "Be kind."))
    assert out["system"] == [
        {"type": "text", "text": "Be kind."},
        {"type": "text", "text": "Be brief."},
    ]


def test_other_endpoints_and_unreadable_bodies_pass_unchanged() -> None:
    embeddings = orjson.dumps({"model": "m", "input": "hi"})
    assert with_system_prompt("embeddings", embeddings, "Be kind.") is embeddings
    assert with_system_prompt("chat.completions", b"not json", "Be kind.") == b"not json"
    no_messages = orjson.dumps({"model": "m"})
    assert with_system_prompt("chat.completions", no_messages, "Be kind.") is no_messages
