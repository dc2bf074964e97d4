"""Coze's v3 chat stream as OpenAI chunks.

Reference: Coze "Create a chat" streaming response: SSE events named by ``event:``
(``conversation.chat.created``, ``conversation.chat.in_progress``,
``conversation.message.delta`` — a piece of a message, ``type: answer`` for the bot's answer,
``reasoning_content`` for a reasoning model's thoughts —, ``conversation.message.completed``
— each whole message, also ``verbose`` and ``follow_up`` ones —, ``conversation.chat.completed``
with ``usage`` {``token_count``, ``output_count``, ``input_count``},
``conversation.chat.failed`` with ``last_error``, ``conversation.chat.requires_action``,
``error``, and ``done`` with ``data:"[DONE]"``).
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.native_stream import ChunkTranslator


def coze_usage(usage: Any) -> common_pb2.Usage | None:
    if not isinstance(usage, dict) or not isinstance(usage.get("input_count"), int):
        return None
    prompt = max(int(usage["input_count"]), 0)
    completion = max(int(usage.get("output_count") or 0), 0)
    return common_pb2.Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def event_name(event: bytes) -> str:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode(errors="replace")
    return ""


class CozeTranslator(ChunkTranslator):
    """Coze events (``{"event": <name>, "data": <payload>}``) in, OpenAI chunks out; a
    failure the stream reports is kept in :attr:`failure` ({code, msg})."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        super().__init__(id=id, model=model, created=created)
        self.failure: dict[str, Any] | None = None

    def feed(self, payload: dict[str, Any]) -> bytes:
        name, data = payload.get("event"), payload.get("data")
        data = data if isinstance(data, dict) else {}
        if name == "conversation.message.delta" and data.get("type") == "answer":
            thought = data.get("reasoning_content")
            if isinstance(thought, str) and thought:
                self.text.append(thought)
                return self.frame({"reasoning_content": thought})
            return self.delta(str(data.get("content") or ""), None)
        if name == "conversation.chat.completed":
            self.usage = coze_usage(data.get("usage"))
            return self.finish("stop")
        if name == "conversation.chat.failed":
            error = data.get("last_error")
            self.failure = error if isinstance(error, dict) else {"code": 0, "msg": "failed"}
            self.finished = True
        elif name == "conversation.chat.requires_action":
            self.failure = {"code": 0, "msg": "The bot asked for a client-side action."}
            self.finished = True
        elif name == "error":
            self.failure = data or {"code": 0, "msg": "error"}
            self.finished = True
        return b""
