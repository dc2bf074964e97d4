"""The Responses API answer: a ``response`` object whose one output message says
``"Echo: " + <text>``, or the stream of named events that builds it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from unigate_sim.openai.chat_reply import shaped_content
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.responses_request import ResponsesRequest
from unigate_sim.openai.sse import event_frame
from unigate_sim.openai.tokens import count_tokens, token_pieces, truncate_tokens


@dataclass(frozen=True, slots=True)
class Answer:
    """What the simulated model answers, and the ids its objects carry."""

    text: str
    incomplete: bool
    response_id: str
    message_id: str
    created_at: int

    @classmethod
    def plan(cls, request: ResponsesRequest) -> Answer:
        fmt = request.text_format
        shape: JSONObject | None = None
        if fmt["type"] == "json_object":
            shape = {"type": "json_object"}
        elif fmt["type"] == "json_schema":
            shape = {"type": "json_schema", "json_schema": {"schema": fmt["schema"]}}
        text = shaped_content(shape, "Echo: " + request.echo_text)
        incomplete = False
        if request.max_output_tokens is not None:
            text, incomplete = truncate_tokens(text, request.max_output_tokens)
        return cls(
            text, incomplete, random_id("resp_", 48), random_id("msg_", 48), int(time.time())
        )


def _usage(request: ResponsesRequest, answer: Answer) -> JSONObject:
    output_tokens = count_tokens(answer.text)
    return {
        "input_tokens": request.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": request.input_tokens + output_tokens,
    }


def _part(text: str) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(answer: Answer, status: str, content: list[JSONObject]) -> JSONObject:
    return {
        "id": answer.message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _final_status(answer: Answer) -> str:
    return "incomplete" if answer.incomplete else "completed"


def render_response(request: ResponsesRequest, answer: Answer, done: bool = True) -> JSONObject:
    """The ``response`` object: complete, or (``done`` False) as a stream first shows it."""
    payload = request.payload

    def given(name: str, default: Any) -> Any:
        value = payload.get(name)
        return default if value is None else value

    status = _final_status(answer) if done else "in_progress"
    output = [_message(answer, status, [_part(answer.text)])] if done else []
    return {
        "id": answer.response_id,
        "object": "response",
        "created_at": answer.created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if done and not answer.incomplete else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"}
        if done and answer.incomplete
        else None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": payload.get("max_tool_calls"),
        "model": request.model,
        "output": output,
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": payload.get("previous_response_id"),
        "reasoning": given("reasoning", {"effort": None, "summary": None}),
        "service_tier": "default",
        "store": given("store", True),
        "temperature": given("temperature", 1.0),
        "text": {"format": request.text_format, "verbosity": "medium"},
        "tool_choice": given("tool_choice", "auto"),
        "tools": given("tools", []),
        "top_logprobs": given("top_logprobs", 0),
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "usage": _usage(request, answer) if done else None,
        "user": payload.get("user"),
        "metadata": given("metadata", {}),
    }


def _events(request: ResponsesRequest, answer: Answer) -> Iterator[JSONObject]:
    """The stream's events, without their sequence numbers."""
    where = {"item_id": answer.message_id, "output_index": 0, "content_index": 0}
    pending = render_response(request, answer, done=False)
    yield {"type": "response.created", "response": pending}
    yield {"type": "response.in_progress", "response": pending}
    item = _message(answer, "in_progress", [])
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    yield {"type": "response.content_part.added", **where, "part": _part("")}
    for piece in token_pieces(answer.text):
        yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
    yield {"type": "response.output_text.done", **where, "text": answer.text, "logprobs": []}
    yield {"type": "response.content_part.done", **where, "part": _part(answer.text)}
    done_item = _message(answer, _final_status(answer), [_part(answer.text)])
    yield {"type": "response.output_item.done", "output_index": 0, "item": done_item}
    final = render_response(request, answer)
    yield {"type": f"response.{_final_status(answer)}", "response": final}


def render_response_stream(request: ResponsesRequest, answer: Answer) -> list[bytes]:
    """The server-sent events of a streamed response (``event:`` and ``data:`` lines, each
    event numbered by ``sequence_number``; no ``[DONE]``)."""
    return [
        event_frame({"type": event["type"], "sequence_number": number, **event})
        for number, event in enumerate(_events(request, answer))
    ]
