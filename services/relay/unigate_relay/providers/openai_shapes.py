"""Building OpenAI-shaped answers, for adapters of providers that speak another protocol.

Every adapter answers the gateway in OpenAI's chat-completions shape: a JSON body for a
non-streamed call, ``data:`` frames of ``chat.completion.chunk`` objects and ``[DONE]`` for a
stream. Translating adapters build them here so that every provider's answer looks the same.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from unigate.v1 import common_pb2

DONE_FRAME = b"data: [DONE]\n\n"


def completion_id() -> str:
    """A fresh ``chatcmpl-…`` id, for providers whose answers carry none (or a foreign one)."""
    return "chatcmpl-" + secrets.token_urlsafe(18)


def usage_dict(usage: common_pb2.Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object for ``usage`` (cached tokens under prompt_tokens_details)."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def completion_body(
    *,
    id: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: common_pb2.Usage,
    created: int | None = None,
) -> bytes:
    """A whole ``chat.completion`` with one choice; ``message`` is the assistant message
    (``role``, ``content``, and ``tool_calls`` / ``reasoning_content`` when present)."""
    return orjson.dumps(
        {
            "id": id,
            "object": "chat.completion",
            "created": created or int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", **message},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_dict(usage),
        }
    )


def completion_body_choices(
    *,
    id: str,
    model: str,
    choices: list[tuple[dict[str, Any], str | None]],
    usage: common_pb2.Usage,
    created: int | None = None,
) -> bytes:
    """A whole ``chat.completion`` with several choices (``n`` > 1): one
    ``(assistant message, finish_reason)`` pair per choice, in index order."""
    return orjson.dumps(
        {
            "id": id,
            "object": "chat.completion",
            "created": created or int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", **message},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                for i, (message, finish_reason) in enumerate(choices)
            ],
            "usage": usage_dict(usage),
        }
    )


def chunk_frame(
    *,
    id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: common_pb2.Usage | None = None,
    index: int = 0,
) -> bytes:
    """One ``data:`` frame of a ``chat.completion.chunk``. With ``usage`` and no ``delta`` it
    is the usage-only chunk (empty ``choices``) that ``include_usage`` asks for. ``index`` is
    the choice's index (``n`` > 1)."""
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None and finish_reason is None
        else [
            {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        chunk["usage"] = usage_dict(usage)
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
