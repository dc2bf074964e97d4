"""Hunyuan's stream as OpenAI chunks.

Each SSE ``data:`` object carries ``Choices[0].Delta`` (``Role``, ``Content``, ``ToolCalls``),
``FinishReason`` (empty until the last: ``stop``, ``tool_calls`` or ``sensitive``) and
``Usage`` (running totals; the last one is final). There is no ``[DONE]``: a finish reason
ends the stream. A failure mid-stream is an ``ErrorMsg`` object.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers import native_stream
from unigate_relay.providers.hunyuan.convert import finish_reason, openai_tool_calls, usage_of


class ChunkTranslator(native_stream.ChunkTranslator):
    """Turns each Hunyuan stream object into OpenAI ``data:`` frames."""

    def feed(self, payload: dict[str, Any]) -> bytes:
        """The frames for one Hunyuan stream object (possibly none)."""
        out = bytearray()
        if isinstance(payload.get("Usage"), dict):
            self.usage = usage_of(payload)
        for choice in payload.get("Choices") or []:
            if not isinstance(choice, dict):
                continue
            raw = choice.get("Delta")
            raw = raw if isinstance(raw, dict) else {}
            out += self.delta(
                str(raw.get("Content") or ""), openai_tool_calls(raw.get("ToolCalls"))
            )
            finish = finish_reason(choice.get("FinishReason"))
            if finish is not None:
                out += self.finish(finish)
        return bytes(out)
