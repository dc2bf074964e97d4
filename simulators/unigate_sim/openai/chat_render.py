"""Rendering a chat reply as OpenAI does: a ``chat.completion`` object, or a stream of
``chat.completion.chunk`` server-sent events."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from unigate_sim.openai.chat_reply import FunctionCall, Reply
from unigate_sim.openai.chat_request import ChatRequest
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import DONE_FRAME, data_frame
from unigate_sim.openai.tokens import token_pieces


@dataclass(frozen=True, slots=True)
class Completion:
    """What every choice and chunk of one completion shares."""

    id: str
    created: int
    fingerprint: str

    @classmethod
    def new(cls, model: str) -> Completion:
        fingerprint = "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]
        return cls(random_id("chatcmpl-", 29), int(time.time()), fingerprint)


def _usage(request: ChatRequest, reply: Reply) -> JSONObject:
    """The ``usage`` of a completion: every one of the ``n`` choices is the same reply."""
    prompt_tokens = request.prompt_tokens
    completion_tokens = reply.completion_tokens() * request.n
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": request.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _token_logprob(piece: str, top: int) -> JSONObject:
    """A logprobs entry: the simulated model is always certain of its token."""
    chosen = {"token": piece, "logprob": 0.0, "bytes": list(piece.encode())}
    alternatives = [
        {"token": f"<alt{rank}>", "logprob": -10.0 * rank, "bytes": list(f"<alt{rank}>".encode())}
        for rank in range(1, top)
    ]
    return {**chosen, "top_logprobs": [chosen, *alternatives][:top]}


def _logprobs_block(pieces: Sequence[str], top: int) -> JSONObject:
    return {"content": [_token_logprob(piece, top) for piece in pieces], "refusal": None}


def _call_json(call: FunctionCall) -> JSONObject:
    return {"name": call.name, "arguments": call.arguments}


def _tool_call_json(function: JSONObject) -> JSONObject:
    """A tool call with a fresh id, calling ``function`` (``{name, arguments}``)."""
    return {"id": random_id("call_", 24), "type": "function", "function": function}


def _render_choice(index: int, request: ChatRequest, reply: Reply) -> JSONObject:
    message: JSONObject = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_call is not None:
        message["tool_calls"] = [_tool_call_json(_call_json(reply.tool_call))]
    if reply.function_call is not None:
        message["function_call"] = _call_json(reply.function_call)
    logprobs = None
    if request.logprobs:
        pieces = token_pieces(reply.content) if reply.content is not None else []
        logprobs = _logprobs_block(pieces, request.top_logprobs)
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": reply.finish_reason,
    }


def render_completion(request: ChatRequest, reply: Reply, completion: Completion) -> JSONObject:
    """The ``chat.completion`` object answered to a non-streaming request."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": request.model,
        "choices": [_render_choice(index, request, reply) for index in range(request.n)],
        "usage": _usage(request, reply),
        "service_tier": request.service_tier,
        "system_fingerprint": completion.fingerprint,
    }


# (delta, logprobs, finish_reason) of one chunk of one choice.
_Delta = tuple[JSONObject, JSONObject | None, str | None]


def _call_deltas(reply: Reply) -> list[_Delta]:
    """A tool or function call streamed like OpenAI: name first, then argument fragments."""
    if reply.tool_call is not None:
        call, key = reply.tool_call, "tool_calls"
        opening: Any = [
            {"index": 0, **_tool_call_json({"name": call.name, "arguments": ""})},
        ]
    else:
        assert reply.function_call is not None
        call, key = reply.function_call, "function_call"
        opening = {"name": call.name, "arguments": ""}
    first: JSONObject = {"role": "assistant", "content": None, key: opening, "refusal": None}
    deltas: list[_Delta] = [(first, None, None)]
    for piece in token_pieces(call.arguments):
        fragment: Any = {"arguments": piece}
        if key == "tool_calls":
            fragment = [{"index": 0, "function": fragment}]
        deltas.append(({key: fragment}, None, None))
    return deltas


def _choice_deltas(request: ChatRequest, reply: Reply) -> list[_Delta]:
    if reply.tool_call is not None or reply.function_call is not None:
        deltas = _call_deltas(reply)
    else:
        top = request.top_logprobs
        first_logprobs: JSONObject | None = None
        if request.logprobs:
            first_logprobs = {"content": [], "refusal": None}
        deltas = [({"role": "assistant", "content": "", "refusal": None}, first_logprobs, None)]
        for piece in token_pieces(reply.content or ""):
            logprobs = _logprobs_block([piece], top) if request.logprobs else None
            deltas.append(({"content": piece}, logprobs, None))
    deltas.append(({}, None, reply.finish_reason))
    return deltas


def render_stream(request: ChatRequest, reply: Reply, completion: Completion) -> list[bytes]:
    """The server-sent event frames answered to a streaming request, ``[DONE]`` included."""
    header: JSONObject = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": request.model,
        "service_tier": request.service_tier,
        "system_fingerprint": completion.fingerprint,
    }
    frames: list[bytes] = []
    for index in range(request.n):
        for delta, logprobs, finish_reason in _choice_deltas(request, reply):
            choice = {
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
            chunk: JSONObject = {**header, "choices": [choice]}
            if request.include_usage:
                chunk["usage"] = None
            frames.append(data_frame(chunk))
    if request.include_usage:
        frames.append(data_frame({**header, "choices": [], "usage": _usage(request, reply)}))
    frames.append(DONE_FRAME)
    return frames
