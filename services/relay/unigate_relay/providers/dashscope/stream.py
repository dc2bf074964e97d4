"""DashScope's native stream as OpenAI chunks.

With ``incremental_output`` each SSE ``data:`` object carries only the new piece:
``output.choices[0].message`` (``content``, ``tool_calls``), ``finish_reason`` (the string
``"null"`` until the last event) and ``usage`` (running totals; the last one is final). There
is no ``[DONE]``: a finish reason ends the stream. A failure is an ``event:error`` event.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers import native_stream
from unigate_relay.providers.dashscope.convert import finish_reason, first_choice, usage_of


class ChunkTranslator(native_stream.ChunkTranslator):
    """Turns each DashScope stream object into OpenAI ``data:`` frames."""

    def feed(self, payload: dict[str, Any]) -> bytes:
        """The frames for one DashScope stream object (possibly none)."""
        if isinstance(payload.get("usage"), dict):
            self.usage = usage_of(payload)
        choice = first_choice(payload)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        calls = message.get("tool_calls")
        out = self.delta(str(message.get("content") or ""), calls if calls else None)
        finish = finish_reason(choice.get("finish_reason"))
        if finish is not None:
            out += self.finish(finish)
        return out
