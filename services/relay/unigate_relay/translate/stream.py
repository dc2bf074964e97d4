"""OpenAI chat stream chunks as Anthropic's SSE event sequence.

Per Anthropic's "Streaming Messages": ``message_start``, then content blocks one after the
other (``content_block_start``, deltas, ``content_block_stop``), then ``message_delta`` with
the stop reason and the final usage, and ``message_stop``; each event is framed with its
``event:`` line. ``reasoning_content`` deltas become a ``thinking`` block, ``content`` a
``text`` block, each tool call (by its OpenAI index, so parallel calls stay apart) a
``tool_use`` block whose arguments arrive as ``input_json_delta``.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject, stop_reason
from unigate_relay.translate.chat_chunks import ChatChunkReader
from unigate_relay.translate.response import anthropic_usage, message_id


def event_frame(payload: JSONObject) -> bytes:
    """One SSE event, named after its payload's ``type``."""
    return (
        b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    )


class MessagesStreamWriter(ChatChunkReader):
    """Feed OpenAI chunk objects; get Anthropic event frames."""

    def __init__(self, model: str, input_tokens: int) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.started = False
        self.finish_reason: str | None = None
        self._next_index = 0
        # The open block: (kind, key) where key is the tool call's OpenAI index for tools.
        self._open: tuple[str, int] | None = None
        self._open_index = -1
        # OpenAI tool call index → its content block index.
        self._tools: dict[int, int] = {}

    def start(self) -> bytes:
        """``message_start`` (with the prompt's size as known so far) and a ``ping``."""
        self.started = True
        message: JSONObject = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return event_frame({"type": "message_start", "message": message}) + event_frame(
            {"type": "ping"}
        )

    def begin(self) -> bytes:
        """The opening events the first time, nothing after."""
        return b"" if self.started else self.start()

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return event_frame({"type": "content_block_stop", "index": self._open_index})

    def _open_block(self, kind: str, key: int, block: JSONObject) -> bytes:
        out = self._close()
        self._open, self._open_index = (kind, key), self._next_index
        self._next_index += 1
        start = {"type": "content_block_start", "index": self._open_index, "content_block": block}
        return out + event_frame(start)

    def _delta(self, index: int, delta: JSONObject) -> bytes:
        return event_frame({"type": "content_block_delta", "index": index, "delta": delta})

    def on_reasoning(self, text: str) -> bytes:
        out = b""
        if self._open != ("thinking", 0):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._open_block("thinking", 0, block)
        return out + self._delta(self._open_index, {"type": "thinking_delta", "thinking": text})

    def on_text(self, text: str) -> bytes:
        out = b""
        if self._open != ("text", 0):
            out += self._open_block("text", 0, {"type": "text", "text": ""})
        return out + self._delta(self._open_index, {"type": "text_delta", "text": text})

    def on_tool_call(self, key: int, call: dict[str, Any], function: Any) -> bytes:
        out = b""
        if key not in self._tools:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or message_id().replace("msg_", "toolu_")),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out += self._open_block("tool_use", key, block)
            self._tools[key] = self._open_index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # OpenAI sends one call's arguments before the next call starts; should a provider
            # interleave them, the delta still names the right block.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += self._delta(self._tools[key], delta)
        return out

    def finish(self, usage: common_pb2.Usage) -> bytes:
        """Close the open block; ``message_delta`` with the stop reason and the final usage;
        ``message_stop``."""
        out = self.begin()
        out += self._close()
        delta = {
            "stop_reason": stop_reason(self.finish_reason) or "end_turn",
            "stop_sequence": None,
        }
        out += event_frame(
            {"type": "message_delta", "delta": delta, "usage": anthropic_usage(usage)}
        )
        return out + event_frame({"type": "message_stop"})
