"""Cohere's v2 chat stream as OpenAI chunks.

Cohere streams SSE events (``event: <type>`` / ``data: {"type": <type>, ...}``;
https://docs.cohere.com/docs/streaming, https://docs.cohere.com/docs/tool-use-streaming):
``message-start``; ``content-start``/``content-delta``/``content-end`` with
``delta.message.content.text``; ``tool-plan-delta`` with ``delta.message.tool_plan``;
``tool-call-start`` (``id``, ``function.name``), ``tool-call-delta`` (``function.arguments``
pieces), ``tool-call-end``; ``citation-start``/``citation-end``; and ``message-end`` with
``delta.finish_reason`` and ``delta.usage``. There is no ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers import native_stream
from unigate_relay.providers.cohere.response import FAILED_REASONS, chat_usage, finish_reason
from unigate_relay.providers.json_values import obj


def _message_delta(event: dict[str, Any]) -> dict[str, Any]:
    return obj(obj(event.get("delta")).get("message"))


class EventTranslator(native_stream.ChunkTranslator):
    """Turns each Cohere stream event into OpenAI ``data:`` frames."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        super().__init__(id=id, model=model, created=created)
        self.failed_reason = ""
        self._calls = -1

    def feed(self, payload: dict[str, Any]) -> bytes:
        """The frames for one Cohere event (possibly none)."""
        event = payload
        kind = event.get("type")
        message = _message_delta(event)
        if kind == "message-start":
            return self.frame({"role": "assistant", "content": ""})
        if kind == "content-delta":
            content = obj(message.get("content"))
            if content.get("thinking"):
                self.text.append(str(content["thinking"]))
                return self.frame({"reasoning_content": str(content["thinking"])})
            text = str(content.get("text") or "")
            if text:
                self.text.append(text)
                return self.frame({"content": text})
            return b""
        if kind == "tool-plan-delta":
            plan = str(message.get("tool_plan") or "")
            if plan:
                self.text.append(plan)
                return self.frame({"content": plan})
            return b""
        calls = obj(message.get("tool_calls"))
        function = obj(calls.get("function"))
        if kind == "tool-call-start":
            self._calls += 1
            name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
            self.text.append(name + arguments)
            return self.frame(
                {
                    "tool_calls": [
                        {
                            "index": self._calls,
                            "id": str(calls.get("id") or ""),
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }
                    ]
                }
            )
        if kind == "tool-call-delta":
            arguments = str(function.get("arguments") or "")
            if not arguments:
                return b""
            self.text.append(arguments)
            return self.frame(
                {
                    "tool_calls": [
                        {"index": max(self._calls, 0), "function": {"arguments": arguments}}
                    ]
                }
            )
        if kind == "message-end":
            delta = obj(event.get("delta"))
            self.usage = chat_usage(delta.get("usage"))
            reason = str(delta.get("finish_reason") or "")
            if reason in FAILED_REASONS:
                self.finished = True
                self.failed_reason = reason
                return b""
            return self.finish(finish_reason(reason))
        return b""
