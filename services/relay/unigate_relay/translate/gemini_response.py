"""OpenAI answers as Gemini's: a chat completion as a ``GenerateContentResponse``, its
stream chunks as ``streamGenerateContent`` chunks, embeddings as ``EmbedContentResponse`` /
``BatchEmbedContentsResponse`` (https://ai.google.dev/api).

A candidate's ``content`` is ``{"role": "model", "parts": [...]}``: reasoning as a
``thought`` text part, the text, then one ``functionCall`` part per tool call (its arguments
parsed into ``args``, the call's id kept so the client's ``functionResponse`` can name it);
``finishReason`` from OpenAI's: stop and tool_calls → STOP, length → MAX_TOKENS,
content_filter → SAFETY. ``usageMetadata`` is the ledger's usage: ``promptTokenCount``,
``candidatesTokenCount``, ``totalTokenCount`` and ``cachedContentTokenCount`` (cache reads).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject
from unigate_relay.translate.chat_chunks import ChatChunkReader

FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def response_id() -> str:
    return secrets.token_urlsafe(16)


def usage_metadata(usage: common_pb2.Usage) -> JSONObject:
    """Gemini's ``usageMetadata`` for the ledger's usage."""
    meta: JSONObject = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens,
        "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = min(usage.cached_tokens, usage.prompt_tokens)
    return meta


def finish_reason(reason: Any) -> str:
    return FINISH_REASONS.get(str(reason or "stop"), "STOP")


def function_call(call: Any) -> JSONObject | None:
    """A ``functionCall`` part for a complete OpenAI tool call."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    arguments = function.get("arguments")
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        args = None
    part: JSONObject = {
        "name": str(function.get("name") or ""),
        "args": args if isinstance(args, dict) else {"arguments": arguments},
    }
    if call.get("id"):
        part["id"] = str(call["id"])
    return {"functionCall": part}


def message_parts(message: Any) -> list[JSONObject]:
    """The parts of a candidate for an OpenAI assistant ``message``."""
    if not isinstance(message, dict):
        return []
    parts: list[JSONObject] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    content = message.get("content")
    if isinstance(content, list):  # some providers answer in parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        parts.append({"text": content})
    for call in message.get("tool_calls") or []:
        part = function_call(call)
        if part is not None:
            parts.append(part)
    return parts


def chat_to_generate(completion: Any, model: str, usage: common_pb2.Usage) -> JSONObject:
    """The ``GenerateContentResponse`` for an OpenAI ``chat.completion`` (every choice a
    candidate, as ``candidateCount`` asked)."""
    candidates = []
    choices = completion.get("choices") if isinstance(completion, dict) else None
    for position, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, dict):
            continue
        candidates.append(
            {
                "content": {"role": "model", "parts": message_parts(choice.get("message"))},
                "finishReason": finish_reason(choice.get("finish_reason")),
                "index": choice.get("index", position),
            }
        )
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
        "responseId": response_id(),
    }


def embeddings_to_gemini(answer: Any, batch: bool) -> JSONObject | None:
    """Gemini's embedding answer for an OpenAI embeddings list (None: unreadable)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not data:
        return None
    ordered = sorted(
        (item for item in data if isinstance(item, dict)), key=lambda item: item.get("index", 0)
    )
    vectors = [item.get("embedding") for item in ordered]
    if len(vectors) != len(data) or not all(isinstance(v, list) for v in vectors):
        return None
    if batch:
        return {"embeddings": [{"values": v} for v in vectors]}
    return {"embedding": {"values": vectors[0]}}


def chunk_frame(payload: JSONObject) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class GenerateStreamWriter(ChatChunkReader):
    """Feed OpenAI chunk objects; get ``streamGenerateContent`` SSE frames. Text and thoughts
    go out as they come; tool calls, whose arguments OpenAI streams in pieces, go out whole
    in the last chunk, which also carries the finish reason and the final usage."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id = response_id()
        self.finish_reason: str | None = None
        # OpenAI tool call index → [id, name, arguments so far].
        self._calls: dict[int, list[str]] = {}
        # The parts of the chunk being read.
        self._parts: list[JSONObject] = []

    def _chunk(self, parts: list[JSONObject], extra: JSONObject | None = None) -> JSONObject:
        candidate: JSONObject = {"content": {"role": "model", "parts": parts}, "index": 0}
        if extra:
            candidate.update(extra)
        return {
            "candidates": [candidate],
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def begin(self) -> bytes:
        """Nothing: a Gemini stream has no opening frame, its first chunk is an answer's."""
        return b""

    def feed(self, chunk: Any) -> bytes:
        """The frame for one OpenAI ``chat.completion.chunk`` object: its text and thoughts."""
        self._parts = []
        super().feed(chunk)
        return chunk_frame(self._chunk(self._parts)) if self._parts else b""

    def on_reasoning(self, text: str) -> bytes:
        self._parts.append({"text": text, "thought": True})
        return b""

    def on_text(self, text: str) -> bytes:
        self._parts.append({"text": text})
        return b""

    def on_tool_call(self, key: int, call: dict[str, Any], function: Any) -> bytes:
        entry = self._calls.setdefault(key, ["", "", ""])
        if call.get("id"):
            entry[0] = str(call["id"])
        if isinstance(function, dict):
            if function.get("name"):
                entry[1] = str(function["name"])
            if isinstance(function.get("arguments"), str):
                entry[2] += function["arguments"]
        return b""

    def finish(self, usage: common_pb2.Usage) -> bytes:
        """The last chunk: the tool calls, the finish reason and the final usage."""
        parts = []
        for key in sorted(self._calls):
            cid, name, arguments = self._calls[key]
            part = function_call({"id": cid, "function": {"name": name, "arguments": arguments}})
            if part is not None:
                parts.append(part)
        last = self._chunk(parts, {"finishReason": finish_reason(self.finish_reason)})
        last["usageMetadata"] = usage_metadata(usage)
        return chunk_frame(last)
