"""Cohere v2 answers as OpenAI answers, and the usage the ledger records.

Chat usage is billed on ``usage.tokens`` (what the model read and wrote, the figures OpenAI's
usage also means) rather than ``usage.billed_units`` (what Cohere invoices, which leaves out
the prompt template and can differ): prices are per token of the model, and the ``tokens``
are what a client's own count of the conversation approaches. Embeddings and rerank report
only ``meta.billed_units``: ``input_tokens`` for embed, ``search_units`` for rerank (priced
per search unit in the price table, ``unigate.unit_prices``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from unigate import unit_prices
from unigate.v1 import common_pb2
from unigate_relay.providers.json_values import count

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# Finish reasons that mean the generation failed rather than ended.
FAILED_REASONS = frozenset({"ERROR", "TIMEOUT"})


def chat_usage(usage: Any) -> common_pb2.Usage | None:
    """Usage from a chat answer's (or ``message-end``'s) ``usage``; None if it has none."""
    if not isinstance(usage, dict):
        return None
    tokens = usage.get("tokens") if isinstance(usage.get("tokens"), dict) else None
    source = tokens or (
        usage.get("billed_units") if isinstance(usage.get("billed_units"), dict) else None
    )
    if source is None:
        return None
    prompt, completion = count(source.get("input_tokens")), count(source.get("output_tokens"))
    return common_pb2.Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def finish_reason(reason: Any) -> str:
    return FINISH_REASONS.get(str(reason), "stop")


def chat_message(message: Any) -> dict[str, Any]:
    """The OpenAI assistant message for Cohere's answer ``message``."""
    message = message if isinstance(message, dict) else {}
    text = "".join(
        str(part.get("text") or "")
        for part in message.get("content") or []
        if isinstance(part, dict) and part.get("type") == "text"
    )
    thinking = "".join(
        str(part.get("thinking") or "")
        for part in message.get("content") or []
        if isinstance(part, dict) and part.get("type") == "thinking"
    )
    out: dict[str, Any] = {}
    calls = [
        {
            "id": str(call.get("id") or ""),
            "type": "function",
            "function": {
                "name": str((call.get("function") or {}).get("name") or ""),
                "arguments": str((call.get("function") or {}).get("arguments") or ""),
            },
        }
        for call in message.get("tool_calls") or []
        if isinstance(call, dict)
    ]
    if calls:
        out["content"] = text or str(message.get("tool_plan") or "") or None
        out["tool_calls"] = calls
    else:
        out["content"] = text
    if thinking:
        out["reasoning_content"] = thinking
    return out


def embeddings_body(
    answer: dict[str, Any], model: str, encoding_format: str
) -> tuple[dict[str, Any], common_pb2.Usage]:
    """OpenAI's embeddings list for Cohere's ``embeddings.float``."""
    vectors = (answer.get("embeddings") or {}).get("float") or []
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = vector
        if encoding_format == "base64":
            # OpenAI's base64: the little-endian float32 bytes of the vector.
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    billed = (answer.get("meta") or {}).get("billed_units") or {}
    tokens = count(billed.get("input_tokens"))
    usage = common_pb2.Usage(prompt_tokens=tokens, total_tokens=tokens)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, usage


def rerank_answer(
    answer: dict[str, Any], model: str, documents: list[str], return_documents: bool
) -> tuple[dict[str, Any], common_pb2.Usage]:
    """The gateway's ``/v1/rerank`` answer (the Cohere/Jina shape) for Cohere's."""
    results = []
    for result in answer.get("results") or []:
        if not isinstance(result, dict):
            continue
        index = count(result.get("index"))
        entry: dict[str, Any] = {"index": index, "relevance_score": result.get("relevance_score")}
        if return_documents and 0 <= index < len(documents):
            entry["document"] = {"text": documents[index]}
        results.append(entry)
    found = answer.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    units = count((meta.get("billed_units") or {}).get("search_units"))
    usage = common_pb2.Usage(unit=unit_prices.SEARCH_UNIT, quantity=units)
    body = {"id": answer.get("id") or "", "model": model, "results": results, "meta": meta}
    return body, usage
