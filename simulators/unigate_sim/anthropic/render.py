"""An answer as Anthropic sends it: a ``message`` object, or the exact SSE event sequence of
its "Streaming Messages" page — ``message_start``, ``ping``, per block
``content_block_start`` / deltas / ``content_block_stop``, ``message_delta``,
``message_stop`` — each framed with its ``event:`` line."""

from __future__ import annotations

from typing import Any

import orjson

from unigate_sim.anthropic.reply import Reply
from unigate_sim.anthropic.request import MessagesRequest
from unigate_sim.anthropic.usage import InputUsage
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import event_frame
from unigate_sim.openai.tokens import token_pieces


def usage_object(prompt: InputUsage, output_tokens: int) -> JSONObject:
    """Anthropic's ``usage``: uncached input, cache writes (with their TTL split), cache
    reads, output."""
    return {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_creation_input_tokens,
        "cache_read_input_tokens": prompt.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": prompt.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens": prompt.ephemeral_1h_input_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def render_message(request: MessagesRequest, reply: Reply, prompt: InputUsage) -> JSONObject:
    """The whole ``message`` of a non-streamed answer."""
    return {
        "id": random_id("msg_", 24),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage_object(prompt, reply.output_tokens),
    }


def _empty(block: JSONObject) -> JSONObject:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def _deltas(block: JSONObject) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text_delta", "text": p} for p in token_pieces(block["text"])]
    if kind == "thinking":
        deltas: list[dict[str, Any]] = [
            {"type": "thinking_delta", "thinking": p} for p in token_pieces(block["thinking"])
        ]
        return [*deltas, {"type": "signature_delta", "signature": block["signature"]}]
    arguments = orjson.dumps(block["input"]).decode()
    return [{"type": "input_json_delta", "partial_json": p} for p in token_pieces(arguments)]


def render_events(request: MessagesRequest, reply: Reply, prompt: InputUsage) -> list[bytes]:
    """The SSE frames of a streamed answer."""
    start = render_message(request, reply, prompt)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = usage_object(prompt, 1)
    frames = [
        event_frame({"type": "message_start", "message": start}),
        event_frame({"type": "ping"}),
    ]
    for index, block in enumerate(reply.content):
        frames.append(
            event_frame(
                {"type": "content_block_start", "index": index, "content_block": _empty(block)}
            )
        )
        frames.extend(
            event_frame({"type": "content_block_delta", "index": index, "delta": delta})
            for delta in _deltas(block)
        )
        frames.append(event_frame({"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    usage = usage_object(prompt, reply.output_tokens)
    usage.pop("cache_creation")
    usage.pop("service_tier")
    frames.append(event_frame({"type": "message_delta", "delta": delta, "usage": usage}))
    frames.append(event_frame({"type": "message_stop"}))
    return frames
