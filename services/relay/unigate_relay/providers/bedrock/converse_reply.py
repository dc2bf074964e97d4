"""Bedrock Converse answers as OpenAI chat answers.

Reference: AWS "Converse" response (``output.message`` with ``content`` blocks — ``text``,
``toolUse``, ``reasoningContent`` —, ``stopReason``: ``end_turn``, ``tool_use``,
``max_tokens``, ``stop_sequence``, ``guardrail_intervened``, ``content_filtered``; ``usage``:
``inputTokens``, ``outputTokens``, ``totalTokens``, ``cacheReadInputTokens``,
``cacheWriteInputTokens``) and "ConverseStream" (``ConverseStreamOutput`` events:
``messageStart``, ``contentBlockStart`` with ``start.toolUse`` {``toolUseId``, ``name``},
``contentBlockDelta`` with ``delta.text`` / ``delta.toolUse.input`` (a piece of the JSON
arguments) / ``delta.reasoningContent.text``, ``contentBlockStop``, ``messageStop`` with
``stopReason``, and last ``metadata`` with ``usage`` and ``metrics``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.json_values import count, obj
from unigate_relay.providers.native_stream import ChunkTranslator

FINISH: Final[dict[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def converse_usage(usage: Any) -> common_pb2.Usage | None:
    """The usage Bedrock reported (``None`` when it reported none). Cache reads and writes are
    counted apart from ``inputTokens`` by Bedrock and are part of the prompt here."""
    if not isinstance(usage, dict) or "inputTokens" not in usage:
        return None
    read = count(usage.get("cacheReadInputTokens"))
    written = count(usage.get("cacheWriteInputTokens"))
    prompt = count(usage.get("inputTokens")) + read + written
    completion = count(usage.get("outputTokens"))
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_5m_tokens=written,
    )


def finish_reason(stop: Any) -> str:
    return FINISH.get(str(stop or ""), "stop")


def answer_message(answer: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the OpenAI assistant message, its finish reason) of a Converse answer."""
    content = obj(obj(answer.get("output")).get("message")).get("content")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        block = obj(block)
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif "toolUse" in block:
            use = obj(block["toolUse"])
            calls.append(
                {
                    "id": str(use.get("toolUseId") or ""),
                    "type": "function",
                    "function": {
                        "name": str(use.get("name") or ""),
                        "arguments": orjson.dumps(use.get("input", {})).decode(),
                    },
                }
            )
        elif "reasoningContent" in block:
            text = obj(obj(block["reasoningContent"]).get("reasoningText")).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    message: dict[str, Any] = {"content": "".join(texts) if texts or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message, finish_reason(answer.get("stopReason"))


def message_text(message: dict[str, Any]) -> str:
    """Everything generated in ``message`` (for counting when Bedrock reports no usage)."""
    calls = "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in message.get("tool_calls") or []
    )
    return str(message.get("content") or "") + calls


class ConverseStreamTranslator(ChunkTranslator):
    """ConverseStream events (``{"type": <event type>, **payload}``) in, OpenAI chunks out.

    The stream is complete at ``metadata`` (it follows ``messageStop`` and carries the usage);
    the finish chunk is sent at ``messageStop``.
    """

    def __init__(self, *, id: str, model: str, created: int) -> None:
        super().__init__(id=id, model=model, created=created)
        self.stopped = False
        self._calls: dict[int, int] = {}  # content block index → OpenAI tool call index

    def feed(self, payload: dict[str, Any]) -> bytes:
        kind = payload.get("type")
        index = count(payload.get("contentBlockIndex"))
        if kind == "messageStart":
            return self.delta("", None)
        if kind == "contentBlockStart":
            use = obj(obj(payload.get("start")).get("toolUse"))
            if not use:
                return b""
            self._calls[index] = len(self._calls)
            call = {
                "index": self._calls[index],
                "id": str(use.get("toolUseId") or ""),
                "type": "function",
                "function": {"name": str(use.get("name") or ""), "arguments": ""},
            }
            return self.delta("", [call])
        if kind == "contentBlockDelta":
            delta = obj(payload.get("delta"))
            if isinstance(delta.get("text"), str):
                return self.delta(delta["text"], None) if delta["text"] else b""
            if "toolUse" in delta and index in self._calls:
                piece = str(obj(delta["toolUse"]).get("input") or "")
                if not piece:
                    return b""
                call = {"index": self._calls[index], "function": {"arguments": piece}}
                return self.delta("", [call])
            thought = obj(delta.get("reasoningContent")).get("text")
            if isinstance(thought, str) and thought:
                self.text.append(thought)
                return self.frame({"reasoning_content": thought})
            return b""
        if kind == "messageStop":
            self.stopped = True
            return self.frame({}, finish_reason(payload.get("stopReason")))
        if kind == "metadata":
            self.usage = converse_usage(payload.get("usage"))
            self.finished = self.stopped
        return b""
