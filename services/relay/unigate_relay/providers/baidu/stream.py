"""ERNIE's stream as OpenAI chunks.

ERNIE streams SSE ``data:`` objects, one per sentence: ``result`` (the new text),
``sentence_id``, ``is_end`` (true on the last), ``finish_reason``, ``function_call`` (on the
last, when a function is called) and ``usage`` (the running totals; the last one is final).
There is no ``[DONE]``: ``is_end`` ends the stream. An error is an ``error_code`` object.
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.baidu.convert import finish_reason_of, tool_calls_of, usage_of
from unigate_relay.providers.openai_shapes import chunk_frame


class ChunkTranslator:
    """Turns each ERNIE stream object into OpenAI ``data:`` frames."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._id, self._model, self._created = id, model, created
        self._opened = False
        self.finished = False
        self.usage: common_pb2.Usage | None = None
        self.text: list[str] = []

    def _frame(self, delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
        return chunk_frame(
            id=self._id, model=self._model, created=self._created, delta=delta, finish_reason=finish
        )

    def feed(self, event: dict[str, Any]) -> bytes:
        """The frames for one ERNIE stream object (possibly none)."""
        out = bytearray()
        if isinstance(event.get("usage"), dict):
            self.usage = usage_of(event)
        text = str(event.get("result") or "")
        calls = tool_calls_of(event)
        delta: dict[str, Any] = {}
        if not self._opened:
            delta["role"] = "assistant"
            self._opened = True
        if text or calls is None:
            delta["content"] = text
            self.text.append(text)
        if calls is not None:
            call = calls[0]
            delta["tool_calls"] = [{"index": 0, **call}]
            self.text.append(call["function"]["name"] + call["function"]["arguments"])
        if delta and (text or calls is not None or "role" in delta):
            out += self._frame(delta)
        if event.get("is_end"):
            self.finished = True
            out += self._frame({}, finish_reason_of(event, calls is not None))
        return bytes(out)

    def usage_frame(self, usage: common_pb2.Usage) -> bytes:
        return chunk_frame(id=self._id, model=self._model, created=self._created, usage=usage)
