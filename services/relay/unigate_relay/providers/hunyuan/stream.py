"""Hunyuan's stream as OpenAI chunks.

Each SSE ``data:`` object carries ``Choices[0].Delta`` (``Role``, ``Content``, ``ToolCalls``),
``FinishReason`` (empty until the last: ``stop``, ``tool_calls`` or ``sensitive``) and
``Usage`` (running totals; the last one is final). There is no ``[DONE]``: a finish reason
ends the stream. A failure mid-stream is an ``ErrorMsg`` object.
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.hunyuan.convert import finish_reason, openai_tool_calls, usage_of
from unigate_relay.providers.openai_shapes import chunk_frame


class ChunkTranslator:
    def __init__(self, *, id: str, model: str, created: int) -> None:
        self._id, self._model, self._created = id, model, created
        self._opened = False
        self.finished = False
        self.usage: common_pb2.Usage | None = None
        self.text: list[str] = []

    def feed(self, event: dict[str, Any]) -> bytes:
        out = bytearray()
        if isinstance(event.get("Usage"), dict):
            self.usage = usage_of(event)
        for choice in event.get("Choices") or []:
            if not isinstance(choice, dict):
                continue
            raw = choice.get("Delta")
            raw = raw if isinstance(raw, dict) else {}
            delta: dict[str, Any] = {}
            if not self._opened:
                delta["role"] = "assistant"
                self._opened = True
            text = str(raw.get("Content") or "")
            calls = openai_tool_calls(raw.get("ToolCalls"))
            if text or not calls:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = calls
                self.text.extend(c["function"]["name"] + c["function"]["arguments"] for c in calls)
            self.text.append(text)
            finish = finish_reason(choice.get("FinishReason"))
            if text or calls or "role" in delta:
                out += chunk_frame(
                    id=self._id, model=self._model, created=self._created, delta=delta
                )
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
