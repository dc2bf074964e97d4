"""Token estimates: a cheap upper bound for some reservations, and offline counts (OpenAI's own
encodings, :mod:`unigate.tokenizer`) for calls whose provider reports no usage. The ledger
marks rows counted this way as estimated.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from unigate.tokenizer import count_text, prompt_tokens
from unigate.v1 import common_pb2


def estimate_body_tokens(body_size: int) -> int:
    """Upper bound of a JSON request's prompt tokens from its size alone: what the reservation
    of a request that does not generate text holds (generating ones are counted)."""
    return max(body_size // 3, 1)


def counted_usage(endpoint: str, body: bytes, model: str, completion_text: str) -> common_pb2.Usage:
    """Usage counted locally for a call whose provider reported none: the request's prompt by
    OpenAI's rules (the size bound when the body is not a JSON request we can count) and the
    generated text, both with ``model``'s encoding."""
    prompt = prompt_tokens(endpoint, body, model)
    if prompt is None:
        prompt = estimate_body_tokens(len(body))
    completion = count_text(completion_text, model)
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        estimated=True,
    )


def streamed_text(chunk_payloads: Iterable[bytes]) -> str:
    """The text (content and reasoning) of OpenAI stream chunks (chat, legacy completions or
    Responses API events), Anthropic Messages events or Gemini ``generateContent`` chunks,
    given their JSON payloads."""
    text = []
    for data in chunk_payloads:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(parsed, dict):
            continue
        if isinstance(parsed.get("delta"), str):  # Responses API text deltas
            text.append(parsed["delta"])
        elif isinstance(parsed.get("delta"), dict):  # Anthropic Messages content deltas
            delta = parsed["delta"]
            text.extend(str(delta.get(k) or "") for k in ("text", "thinking", "partial_json"))
        for candidate in parsed.get("candidates") or []:  # Gemini generateContent chunks
            content = candidate.get("content") if isinstance(candidate, dict) else None
            for part in (content.get("parts") if isinstance(content, dict) else None) or []:
                if isinstance(part, dict):
                    text.append(str(part.get("text") or ""))
                    if isinstance(part.get("functionCall"), dict):
                        text.append(orjson.dumps(part["functionCall"]).decode())
        for choice in parsed.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text.append(str(delta.get("content") or ""))
            text.append(str(delta.get("reasoning_content") or ""))
            text.append(str(choice.get("text") or ""))  # legacy completions
    return "".join(text)


def sse_payloads(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of whole SSE events in ``raw`` (``[DONE]`` excluded)."""
    out = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    out.append(payload)
    return out
