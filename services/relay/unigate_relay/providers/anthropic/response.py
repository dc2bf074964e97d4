"""An Anthropic Messages answer as an OpenAI chat completion, and Anthropic's usage as the
ledger's.

Per Anthropic's Messages reference: ``text`` blocks join into ``content``, ``thinking`` blocks
into ``reasoning_content``, ``tool_use`` blocks become ``tool_calls`` (``input`` serialized as
the ``arguments`` string), ``stop_reason`` maps to ``finish_reason``. Usage: Anthropic's
``input_tokens`` excludes the prompt-cache tokens, so the prompt is input + cache read +
cache creation, of which the cache reads are OpenAI's ``cached_tokens`` and the cache
creation the ledger's cache writes, split by the entry's lifetime (Anthropic bills a 1-hour
write above a 5-minute one).
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject, finish_reason
from unigate_relay.providers.json_values import count


def cache_writes(raw: JSONObject) -> tuple[int, int]:
    """(5-minute, 1-hour) prompt-cache writes of Anthropic's ``usage``.

    ``cache_creation_input_tokens`` is every write; the ``cache_creation`` breakdown
    (``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``) says how many were
    1-hour. Without the breakdown every write is a 5-minute one (the default lifetime, and the
    only one before the 1-hour cache existed); without the total, the breakdown's sum is it.
    A total beyond the breakdown's sum is counted as 5-minute writes, the cheaper reading.
    """
    split = raw.get("cache_creation")
    split = split if isinstance(split, dict) else {}
    five = max(count(split.get("ephemeral_5m_input_tokens")), 0)
    hour = max(count(split.get("ephemeral_1h_input_tokens")), 0)
    reported = raw.get("cache_creation_input_tokens")
    total = max(count(reported), 0) if reported is not None else five + hour
    hour = min(hour, total)
    return total - hour, hour


def usage_from_anthropic(raw: Any) -> common_pb2.Usage:
    """The ledger's usage for Anthropic's ``usage`` object."""
    if not isinstance(raw, dict):
        return common_pb2.Usage()
    cache_read = count(raw.get("cache_read_input_tokens"))
    write_5m, write_1h = cache_writes(raw)
    prompt = count(raw.get("input_tokens")) + cache_read + write_5m + write_1h
    completion = count(raw.get("output_tokens"))
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cache_read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def merge_usage(into: JSONObject, raw: Any) -> None:
    """Fold a stream event's ``usage`` into ``into``: later counts are cumulative totals and
    replace earlier ones; fields an event leaves out (or null) keep their earlier value."""
    if isinstance(raw, dict):
        into.update({k: v for k, v in raw.items() if v is not None})


def tool_call(block: JSONObject) -> JSONObject:
    """An OpenAI tool call for a ``tool_use`` block."""
    return {
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {
            "name": str(block.get("name") or ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def assistant_message(content: Any, content_tool: str | None = None) -> JSONObject:
    """OpenAI's assistant message for the content blocks of an Anthropic answer. A call of
    ``content_tool`` (the response tool of ``structured``) is the answer itself: its input,
    serialized, is the message's content."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSONObject] = []
    structured: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use" and content_tool is not None and block.get("name") == content_tool:
            structured.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            calls.append(tool_call(block))
    if structured:
        # Any words around the structured answer would break the client's JSON parse.
        texts = structured[:1]
    message: JSONObject = {"content": "".join(texts) if texts or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def message_to_chat(
    answer: JSONObject, content_tool: str | None = None
) -> tuple[JSONObject, str | None, common_pb2.Usage]:
    """(assistant message, finish reason, usage) of an Anthropic ``message`` object;
    ``content_tool`` as for :func:`assistant_message`."""
    message = assistant_message(answer.get("content"), content_tool)
    finish = finish_reason(answer.get("stop_reason"))
    if finish == "tool_calls" and "tool_calls" not in message:
        # Only the response tool was called: for the client the answer simply ended.
        finish = "stop"
    return message, finish, usage_from_anthropic(answer.get("usage"))
