"""Cheap token estimates, for reservations and for providers that report no usage.

These are deliberately simple and fast; the ledger marks rows counted this way as estimated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def estimate_text_tokens(text: str) -> int:
    """About one token per CJK character and per four other characters."""
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return cjk + max((len(text) - cjk + 3) // 4, 0)


def estimate_body_tokens(body_size: int) -> int:
    """Upper-bound-ish estimate of a JSON request's prompt tokens from its size alone."""
    return max(body_size // 3, 1)


def streamed_text(chunk_payloads: Iterable[bytes]) -> str:
    """The text (content and reasoning) of OpenAI stream chunks (chat, legacy completions or
    Responses API events), given their JSON payloads."""
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
