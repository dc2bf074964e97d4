"""Anthropic's SSE stream: reading its events, and translating them into OpenAI chunks.

Reference: Anthropic's "Streaming Messages". A stream is ``message_start`` (the message with
its input usage), per content block ``content_block_start`` / ``content_block_delta``
(``text_delta``, ``thinking_delta``, ``signature_delta``, ``input_json_delta``) /
``content_block_stop``, then ``message_delta`` (``stop_reason`` and cumulative usage) and
``message_stop``; ``ping`` may come anywhere, and ``error`` replaces the rest of the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.response import merge_usage, usage_from_anthropic
from unigate_relay.providers.anthropic.wire import JSONObject, finish_reason
from unigate_relay.providers.openai_shapes import DONE_FRAME, chunk_frame


def parse_event(data: bytes) -> JSONObject | None:
    """The JSON object of one event's data (None if it is not one)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _index(event: JSONObject) -> int:
    """An event's content block index (-1 when it has none)."""
    index = event.get("index")
    return index if isinstance(index, int) else -1


class StreamState:
    """What a stream has said so far: its usage, stop reason, end and error."""

    def __init__(self) -> None:
        self.raw_usage: JSONObject = {}
        self.stop_reason: str | None = None
        self.finished = False
        self.error: JSONObject | None = None
        self.has_content = False
        self._usage_reported = False

    def observe(self, event: JSONObject) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                merge_usage(self.raw_usage, message.get("usage"))
        elif kind == "message_delta":
            merge_usage(self.raw_usage, event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "content_block_start" or kind == "content_block_delta":
            self.has_content = True
        elif kind == "error":
            error = event.get("error")
            self.error = error if isinstance(error, dict) else {"message": "stream error"}

    def usage(self) -> common_pb2.Usage | None:
        """The usage reported so far (None if the stream carried none)."""
        return usage_from_anthropic(self.raw_usage) if self.raw_usage else None

    def final_usage(self) -> common_pb2.Usage | None:
        """The stream's final usage, once ``message_delta`` brought it (only ``message_stop``
        follows), so that a stream cut after it is still billed at it; else None."""
        if self.error is not None or not (self.finished or self.stop_reason is not None):
            return None
        return self.usage()

    def report_usage(self) -> common_pb2.Usage | None:
        """The final usage the first time it is known, for the relay to report ahead of the
        stream's end (``RelayChunk.usage``); None before and after."""
        if self._usage_reported or (usage := self.final_usage()) is None:
            return None
        self._usage_reported = True
        return usage


def with_reported_prompt(counted: common_pb2.Usage, reported: common_pb2.Usage) -> None:
    """Fill ``counted`` (what an unfinished stream is billed, counted locally) with the prompt
    Anthropic reported at ``message_start`` (its size, cache reads and cache writes): only the
    output is unknown."""
    counted.prompt_tokens = reported.prompt_tokens
    counted.cached_tokens = reported.cached_tokens
    counted.cache_write_5m_tokens = reported.cache_write_5m_tokens
    counted.cache_write_1h_tokens = reported.cache_write_1h_tokens
    counted.completion_tokens = max(counted.completion_tokens, reported.completion_tokens)
    counted.total_tokens = counted.prompt_tokens + counted.completion_tokens


class ChatStreamTranslator(StreamState):
    """Anthropic events in, OpenAI ``chat.completion.chunk`` frames out.

    Content blocks map to deltas: text → ``content``, thinking → ``reasoning_content``,
    ``tool_use`` → a ``tool_calls`` entry (its id and name when the block starts, then the
    ``input_json_delta`` pieces as ``arguments``), numbered in the order the tools appear, so
    parallel tool calls keep distinct indices. A ``tool_use`` of ``content_tool`` (the
    response tool of ``structured``) streams its input as ``content`` instead.
    """

    def __init__(
        self,
        *,
        id: str,
        model: str,
        created: int,
        include_usage: bool,
        content_tool: str | None = None,
    ) -> None:
        super().__init__()
        self.id, self.model, self.created = id, model, created
        self.include_usage = include_usage
        self.content_tool = content_tool
        # Content block index → OpenAI tool call index.
        self._tools: dict[int, int] = {}
        # Content block index of the response tool's call → whether it streamed any input.
        self._content_blocks: dict[int, bool] = {}

    def _frame(self, delta: JSONObject | None = None, finish: str | None = None) -> bytes:
        return chunk_frame(
            id=self.id, model=self.model, created=self.created, delta=delta, finish_reason=finish
        )

    def feed(self, event: JSONObject) -> list[bytes]:
        """The OpenAI frames for one Anthropic event."""
        self.observe(event)
        kind = event.get("type")
        if kind == "message_start":
            return [self._frame({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta" and self.stop_reason is not None:
            finish = finish_reason(self.stop_reason)
            if finish == "tool_calls" and not self._tools:
                # Only the response tool was called: for the client the answer simply ended.
                finish = "stop"
            return [self._frame({}, finish)]
        if kind == "content_block_stop" and self._content_blocks.get(_index(event)) is False:
            # A response tool call with an empty input still answers an (empty) object.
            self._content_blocks[_index(event)] = True
            return [self._frame({"content": "{}"})]
        if kind == "message_stop":
            return self.closing_frames()
        return []

    def closing_frames(self) -> list[bytes]:
        """The usage chunk (when the client asked for it) and ``[DONE]``."""
        frames = []
        usage = self.usage()
        if self.include_usage and usage is not None:
            frames.append(
                chunk_frame(id=self.id, model=self.model, created=self.created, usage=usage)
            )
        frames.append(DONE_FRAME)
        return frames

    def _block_start(self, event: JSONObject) -> list[bytes]:
        block: Any = event.get("content_block")
        index = event.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return []
        kind = block.get("type")
        answer_tool = self.content_tool
        if kind == "tool_use" and answer_tool is not None and block.get("name") == answer_tool:
            self._content_blocks[index] = False
            return []
        if kind == "tool_use":
            position = self._tools.setdefault(index, len(self._tools))
            call = {
                "index": position,
                "id": str(block.get("id") or ""),
                "type": "function",
                "function": {"name": str(block.get("name") or ""), "arguments": ""},
            }
            return [self._frame({"tool_calls": [call]})]
        # A block may open with text already in it.
        if kind == "text" and block.get("text"):
            return [self._frame({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._frame({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, event: JSONObject) -> list[bytes]:
        delta: Any = event.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._frame({"content": delta["text"]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._frame({"reasoning_content": delta["thinking"]})]
        if kind == "input_json_delta" and _index(event) in self._content_blocks:
            if not delta.get("partial_json"):
                return []
            self._content_blocks[_index(event)] = True
            return [self._frame({"content": delta["partial_json"]})]
        if kind == "input_json_delta":
            position = self._tools.get(event.get("index", -1))
            if position is None or not delta.get("partial_json"):
                return []
            call = {"index": position, "function": {"arguments": delta["partial_json"]}}
            return [self._frame({"tool_calls": [call]})]
        return []
