"""Gemini answers → OpenAI chat completions and embeddings.

References: https://ai.google.dev/api/generate-content#generatecontentresponse (candidates,
``promptFeedback.blockReason``, ``usageMetadata``: promptTokenCount, candidatesTokenCount,
thoughtsTokenCount, cachedContentTokenCount, toolUsePromptTokenCount) and
https://ai.google.dev/api/embeddings#batchembedcontentsresponse.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.gemini.ids import tool_call_id
from unigate_relay.providers.gemini.wire import FINISH_REASONS
from unigate_relay.providers.openai_shapes import completion_body_choices


def usage_from(meta: Any) -> common_pb2.Usage | None:
    """OpenAI usage from ``usageMetadata`` (None when it is absent). Thinking tokens are
    output Gemini bills as such, so they count as completion tokens."""
    if not isinstance(meta, dict) or "promptTokenCount" not in meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + int(
        meta.get("thoughtsTokenCount") or 0
    )
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(meta.get("totalTokenCount") or 0) or prompt + completion,
        cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
    )


def finish_reason(reason: Any, called: bool) -> str | None:
    """OpenAI's finish_reason for a candidate's ``finishReason`` (None while unfinished)."""
    if called:
        return "tool_calls"
    if not isinstance(reason, str) or not reason:
        return None
    return FINISH_REASONS.get(reason, "stop")


def blocked(response: Any) -> bool:
    """Whether Gemini refused the prompt itself (``promptFeedback.blockReason``)."""
    feedback = response.get("promptFeedback") if isinstance(response, dict) else None
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


@dataclass(slots=True)
class Message:
    """What one candidate said, in OpenAI's terms."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        message: dict[str, Any] = {"content": self.content or None}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        elif message["content"] is None:
            message["content"] = ""
        return message


def tool_call(call: dict[str, Any], signature: Any) -> dict[str, Any]:
    """An OpenAI tool call for a Gemini ``functionCall`` part."""
    gemini_id = call.get("id") if isinstance(call.get("id"), str) else None
    return {
        "id": tool_call_id(gemini_id, signature if isinstance(signature, str) else None),
        "type": "function",
        "function": {
            "name": str(call.get("name") or ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def read_parts(parts: Any, into: Message) -> None:
    """Add a candidate's parts (text, thoughts, function calls) to ``into``."""
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            into.tool_calls.append(tool_call(part["functionCall"], part.get("thoughtSignature")))
        elif isinstance(part.get("text"), str):
            if part.get("thought") is True:
                into.reasoning += part["text"]
            else:
                into.content += part["text"]


def candidate_index(candidate: dict[str, Any], position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and index >= 0 else position


def completion(
    response: dict[str, Any],
    model: str,
    id: str,
    fallback: Callable[[str], common_pb2.Usage],
) -> tuple[bytes, common_pb2.Usage]:
    """The ``chat.completion`` body for a whole ``GenerateContentResponse``, and its usage
    (``fallback(generated text)`` when Gemini reported none)."""
    reported = usage_from(response.get("usageMetadata"))
    candidates = [c for c in response.get("candidates") or [] if isinstance(c, dict)]
    if not candidates:
        # The prompt was blocked (promptFeedback.blockReason): nothing was generated.
        usage = reported or fallback("")
        refused = "content_filter" if blocked(response) else "stop"
        body = completion_body_choices(
            id=id, model=model, choices=[({"content": ""}, refused)], usage=usage
        )
        return body, usage
    ordered = sorted(enumerate(candidates), key=lambda p: candidate_index(p[1], p[0]))
    choices: list[tuple[dict[str, Any], str | None]] = []
    texts = []
    for _, candidate in ordered:
        message = Message()
        read_parts((candidate.get("content") or {}).get("parts"), message)
        reason = finish_reason(candidate.get("finishReason"), bool(message.tool_calls))
        choices.append((message.as_dict(), reason or "stop"))
        texts += [message.reasoning, message.content]
        texts += [c["function"]["name"] + c["function"]["arguments"] for c in message.tool_calls]
    usage = reported or fallback("".join(texts))
    return completion_body_choices(id=id, model=model, choices=choices, usage=usage), usage


def embedding_item(values: list[float], index: int, encoding: str) -> dict[str, Any]:
    """One ``data`` entry of an OpenAI embeddings answer (floats, or base64 of float32 LE as
    OpenAI sends for ``encoding_format: base64``, the openai SDK's default)."""
    embedding: Any = values
    if encoding == "base64":
        embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return {"object": "embedding", "index": index, "embedding": embedding}


def embeddings_body(
    vectors: list[list[float]], model: str, encoding: str, usage: common_pb2.Usage
) -> bytes:
    """OpenAI's embeddings answer for ``vectors``, in input order."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [embedding_item(v, i, encoding) for i, v in enumerate(vectors)],
            "model": model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
    )


def batch_embeddings(response: Any) -> list[list[float]] | None:
    """The vectors of a ``batchEmbedContents`` answer, or None if it is malformed."""
    items = response.get("embeddings") if isinstance(response, dict) else None
    if not isinstance(items, list):
        return None
    vectors = [item.get("values") for item in items if isinstance(item, dict)]
    if len(vectors) != len(items) or not all(isinstance(v, list) for v in vectors):
        return None
    return [[float(x) for x in v] for v in vectors if isinstance(v, list)]
