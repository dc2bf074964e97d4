"""ERNIE's stream as OpenAI chunks.

ERNIE streams SSE ``data:`` objects, one per sentence: ``result`` (the new text),
``sentence_id``, ``is_end`` (true on the last), ``finish_reason``, ``function_call`` (on the
last, when a function is called) and ``usage`` (the running totals; the last one is final).
There is no ``[DONE]``: ``is_end`` ends the stream. An error is an ``error_code`` object.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers import native_stream
from unigate_relay.providers.baidu.convert import finish_reason_of, tool_calls_of, usage_of


class ChunkTranslator(native_stream.ChunkTranslator):
    """Turns each ERNIE stream object into OpenAI ``data:`` frames."""

    def feed(self, payload: dict[str, Any]) -> bytes:
        """The frames for one ERNIE stream object (possibly none)."""
        if isinstance(payload.get("usage"), dict):
            self.usage = usage_of(payload)
        calls = tool_calls_of(payload)
        # ERNIE calls one function at a time: it is always call 0.
        out = self.delta(
            str(payload.get("result") or ""), [{"index": 0, **calls[0]}] if calls else None
        )
        if payload.get("is_end"):
            out += self.finish(finish_reason_of(payload, calls is not None))
        return out
