"""Exact usage from OpenAI-protocol answers, per endpoint, and estimates where the provider
reports none (rows counted this way are marked estimated in the ledger)."""

from __future__ import annotations

from typing import Any

import orjson

from unigate.tokens import counted_usage
from unigate.v1 import common_pb2

# An image is billed as this many units of its model's ratio (the default prices are set so
# that it comes to the provider's per-image list price).
TOKENS_PER_IMAGE = 1000


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_object(raw: Any) -> common_pb2.Usage | None:
    """OpenAI's usage in either naming: chat (prompt/completion) or Responses/images
    (input/output tokens)."""
    if not isinstance(raw, dict):
        return None
    prompt = _int(raw.get("prompt_tokens")) or _int(raw.get("input_tokens"))
    completion = _int(raw.get("completion_tokens")) or _int(raw.get("output_tokens"))
    details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    # DeepSeek reports its context-cache hits as prompt_cache_hit_tokens, Moonshot as a
    # top-level cached_tokens.
    cached = cached or _int(raw.get("prompt_cache_hit_tokens")) or _int(raw.get("cached_tokens"))
    if not prompt and not completion and _int(raw.get("total_tokens")):
        prompt = _int(raw.get("total_tokens"))  # rerank and embeddings report only a total
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(raw.get("total_tokens")) or prompt + completion,
        cached_tokens=cached,
    )


def _request_json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _answer_text(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("text"), str):  # transcriptions
        return str(data["text"])
    text = []
    for choice in data.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            text.append(str(message.get("content") or choice.get("text") or ""))
    for item in data.get("output") or []:  # Responses
        for part in (item.get("content") or []) if isinstance(item, dict) else []:
            if isinstance(part, dict):
                text.append(str(part.get("text") or ""))
    return "".join(text)


def usage_from_answer(
    endpoint: str, request_body: bytes, content_type: str, answer: bytes, model: str = ""
) -> common_pb2.Usage:
    """Usage of a non-streamed answer: the provider's own figures when it gives them, else
    counted with ``model``'s encoding."""
    if endpoint == "audio.speech":
        # Speech is priced per input character, which we know exactly.
        chars = len(str(_request_json(request_body).get("input") or ""))
        return common_pb2.Usage(prompt_tokens=chars, total_tokens=chars)
    data: Any = None
    if "json" in content_type:
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            data = None
    exact = usage_object(data.get("usage")) if isinstance(data, dict) else None
    if exact is not None:
        return exact
    if endpoint == "images.generations":
        n = max(_int(_request_json(request_body).get("n")), 1)
        return common_pb2.Usage(
            completion_tokens=n * TOKENS_PER_IMAGE, total_tokens=n * TOKENS_PER_IMAGE
        )
    text = _answer_text(data) if data is not None else answer.decode(errors="replace")
    return counted_usage(endpoint, request_body, model, text)


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(value, list) and key.isdigit():
            # A list index (Moonshot: "choices", "0", "usage").
            value = value[int(key)] if int(key) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def usage_from_stream_event(
    data: bytes, path: tuple[str, ...] | None = None
) -> tuple[common_pb2.Usage, bool] | None:
    """Usage carried by one stream payload, and whether the event is usage-only (a chat
    usage chunk with no choices, which clients that did not ask for it must not see).

    ``path`` names where a provider puts usage besides the top-level ``usage`` (Groq:
    ``("x_groq", "usage")``); the top-level one wins when both are present."""
    if b'"usage":' not in data:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    response = parsed.get("response")
    if isinstance(response, dict) and parsed.get("type") == "response.completed":
        found = usage_object(response.get("usage"))
        return (found, False) if found is not None else None
    found = usage_object(parsed.get("usage"))
    if found is None and path:
        found = usage_object(_at(parsed, path))
    if found is None:
        return None
    return found, "choices" in parsed and not parsed.get("choices")
