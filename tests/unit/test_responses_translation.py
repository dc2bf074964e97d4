"""The Responses API over chat completions (``unigate_relay.translate.responses_*``), the
replay of a stored conversation, and the gateway's pages of input items."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from unigate import errors
from unigate.responses_items import input_items
from unigate.v1 import common_pb2, relay_pb2
from unigate_gateway.responses_api import _page, final_response
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.translate.responses_history import native_body, with_history
from unigate_relay.translate.responses_request import responses_to_chat
from unigate_relay.translate.responses_response import chat_to_response, response_skeleton
from unigate_relay.translate.responses_stream import ResponsesStreamWriter

USAGE = common_pb2.Usage(prompt_tokens=20, completion_tokens=8, cached_tokens=4)


def test_a_whole_conversation_becomes_chat_messages() -> None:
    request: dict[str, Any] = {
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use metric units."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "weather here?"},
                    {"type": "input_image", "image_url": "https://x/img.png", "detail": "low"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "c2", "name": "t", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"text": "noon"}]},
        ],
        "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "w"},
        "max_output_tokens": 99,
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": True}},
        "stream": True,
    }
    chat = responses_to_chat(request, "upstream", "max_completion_tokens")
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use metric units."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather here?"},
                {"type": "image_url", "image_url": {"url": "https://x/img.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a":1}'}},
                {"id": "c2", "type": "function", "function": {"name": "t", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]
    assert chat["model"] == "upstream" and chat["max_completion_tokens"] == 99
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["reasoning_effort"] == "low"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {}, "strict": True},
    }
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search_preview"}]}, "tools[0]"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, ""),
        ({"input": 7}, "input"),
    ],
)
def test_what_chat_cannot_say_is_refused(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(ConversionError) as refused:
        responses_to_chat(request_body, "m", "max_tokens")
    assert refused.value.param.startswith(param)


def test_a_completion_becomes_a_response_object() -> None:
    completion = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "reasoning_content": "hmm",
                    "content": "Hi",
                    "tool_calls": [
                        {"id": "call_1", "function": {"name": "w", "arguments": '{"c":"P"}'}}
                    ],
                },
                "finish_reason": "length",
            }
        ]
    }
    response = chat_to_response(completion, {"store": False, "input": "x"}, "m", "resp_1", USAGE)
    assert [o["type"] for o in response["output"]] == ["reasoning", "message", "function_call"]
    assert response["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert response["output"][1]["content"][0]["text"] == "Hi"
    assert response["output"][2]["call_id"] == "call_1"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 8,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 28,
    }
    assert (response["id"], response["store"], response["model"]) == ("resp_1", False, "m")


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def test_the_stream_writer_builds_every_item_with_stable_ids() -> None:
    writer = ResponsesStreamWriter(response_skeleton({}, "m", "resp_1"))
    out = writer.start()
    for delta in (
        {"reasoning_content": "thinking"},
        {"content": "Hel"},
        {"content": "lo"},
        {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "w", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "t", "arguments": "{}"}}]},
    ):
        out += writer.feed({"choices": [{"index": 0, "delta": delta}]})
    out += writer.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    out += writer.finish(USAGE)
    parsed = events(out)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    kinds = [e["type"] for e in parsed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert parsed[0]["response"]["output"] == []
    assert kinds[-1] == "response.completed"
    final = parsed[-1]["response"]
    assert [o["type"] for o in final["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert final["output"][1]["content"][0]["text"] == "Hello"
    assert final["output"][2]["arguments"] == '{"a":1}' and final["output"][2]["call_id"] == "c1"
    assert final["usage"]["input_tokens"] == 20 and final["status"] == "completed"
    # Each item is added, then done, under one id at one index, the id the final one has.
    added = [e for e in parsed if e["type"] == "response.output_item.added"]
    done = [e for e in parsed if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in added] == [0, 1, 2, 3]
    assert [e["item"]["id"] for e in added] == [e["item"]["id"] for e in done]
    assert [e["item"]["id"] for e in done] == [o["id"] for o in final["output"]]
    text_done = next(e for e in parsed if e["type"] == "response.output_text.done")
    assert text_done["text"] == "Hello"


def test_a_stream_cut_by_the_output_limit_ends_incomplete() -> None:
    writer = ResponsesStreamWriter(response_skeleton({}, "m", "resp_1"))
    out = writer.start() + writer.feed(
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "length"}]}
    )
    last = events(out + writer.finish(USAGE))[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final_response(writer.finish(USAGE)) is not None


HISTORY = [
    {"type": "message", "id": "msg_1", "role": "user", "content": "hi", "status": "completed"},
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "message", "id": "msg_2", "role": "assistant", "content": [], "status": "completed"},
]


def relay_request(channel_id: int) -> relay_pb2.RelayRequest:
    return relay_pb2.RelayRequest(
        channel_id=channel_id,
        body=orjson.dumps({"input": "again", "previous_response_id": "resp_1"}),
        responses_history=orjson.dumps(HISTORY),
        responses_channel_id=5,
    )


def test_the_channel_that_keeps_the_state_gets_the_id_others_the_conversation() -> None:
    assert native_body(relay_request(5)) == relay_request(5).body
    elsewhere = orjson.loads(native_body(relay_request(6)))
    assert "previous_response_id" not in elsewhere
    # Neither ids nor reasoning items it never issued go to another provider.
    assert elsewhere["input"] == [
        {k: v for k, v in item.items() if k != "id"} for item in HISTORY if item["id"] != "rs_1"
    ] + [{"role": "user", "content": "again"}]
    translated = orjson.loads(with_history(relay_request(6), keep_previous_id=True))
    assert translated["previous_response_id"] == "resp_1"
    assert translated["input"][:3] == HISTORY and translated["input"][3]["content"] == [
        {"type": "input_text", "text": "again"}
    ]


def test_input_items_get_ids_and_types() -> None:
    items = input_items([{"role": "user", "content": "a"}, {"type": "function_call_output"}])
    assert items[0]["type"] == "message" and items[0]["id"].startswith("msg_")
    assert items[1]["id"].startswith("fco_")
    assert input_items("hi")[0]["content"] == [{"type": "input_text", "text": "hi"}]


ITEMS = [{"id": f"i{n}"} for n in range(5)]


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def test_input_item_pages_as_openai_lists() -> None:
    first = _page(ITEMS, {"limit": "2"})
    assert ids(first) == ["i4", "i3"] and first["has_more"] and first["last_id"] == "i3"
    assert ids(_page(ITEMS, {"limit": "2", "after": "i3"})) == ["i2", "i1"]
    last = _page(ITEMS, {"limit": "2", "after": "i1"})
    assert ids(last) == ["i0"] and not last["has_more"]
    assert ids(_page(ITEMS, {"order": "asc", "after": "i2"})) == ["i3", "i4"]
    assert ids(_page(ITEMS, {"order": "asc", "before": "i3", "limit": "2"})) == ["i1", "i2"]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"order": "up"}, {"after": "nope"}):
        with pytest.raises(errors.InvalidRequest):
            _page(ITEMS, bad)
