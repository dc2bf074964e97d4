"""DashScope's native stream as OpenAI chunks.

With ``incremental_output`` each SSE ``data:`` object carries only the new piece:
``output.choices[0].message`` (``content``, ``tool_calls``), ``finish_reason`` (the string
``"null"`` until the last event) and ``usage`` (running totals; the last one is final). There
is no ``[DONE]``: a finish reason ends the stream. A failure is an ``event:error`` event.
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.dashscope.convert import finish_reason, first_choice, usage_of
from unigate_relay.providers.openai_shapes import chunk_frame


class ChunkTranslator:
    """Turns each DashScope stream object into OpenAI ``data:`` frames."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._id, self._model, self._created = id, model, created
        self._opened = False
        self.finished = False
        self.usage: common_pb2.Usage | None = None
        self.text: list[str] = []

    def feed(self, event: dict[str, Any]) -> bytes:
        """The frames for one DashScope stream object (possibly none)."""
        out = bytearray()
        if isinstance(event.get("usage"), dict):
            self.usage = usage_of(event)
        choice = first_choice(event)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        delta: dict[str, Any] = {}
        if not self._opened:
            delta["role"] = "assistant"
            self._opened = True
        piece = str(message.get("content") or "")
        if piece or not message.get("tool_calls"):
            delta["content"] = piece
        if message.get("tool_calls"):
            delta["tool_calls"] = message["tool_calls"]
            self.text.extend(
                str((c.get("function") or {}).get("name") or "")
                + str((c.get("function") or {}).get("arguments") or "")
                for c in message["tool_calls"]
                if isinstance(c, dict)
            )
        self.text.append(piece)
        if piece or "tool_calls" in delta or "role" in delta:
            out += chunk_frame(id=self._id, model=self._model, created=self._created, delta=delta)
        finish = finish_reason(choice.get("finish_reason"))
        if finish is not None:
            self.finished = True
            out += chunk_frame(
                id=self._id,
                model=self._model,
                created=self._created,
                delta={},
                finish_reason=finish,
            )
        return bytes(out)

    def usage_frame(self, usage: common_pb2.Usage) -> bytes:
        return chunk_frame(id=self._id, model=self._model, created=self._created, usage=usage)
