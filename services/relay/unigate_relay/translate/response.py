"""An OpenAI chat completion as an Anthropic ``message``, and the ledger's usage in
Anthropic's terms.

Per Anthropic's Messages reference: ``content`` is a list of blocks (``thinking`` from
``reasoning_content``, ``text``, one ``tool_use`` per tool call with its arguments parsed into
``input``); ``stop_reason`` from ``finish_reason``; ``usage.input_tokens`` excludes cache
reads, which go in ``cache_read_input_tokens``.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject, stop_reason


def message_id() -> str:
    """A fresh ``msg_…`` id, as Anthropic's answers carry."""
    return "msg_" + secrets.token_urlsafe(18)


def anthropic_usage(usage: common_pb2.Usage) -> JSONObject:
    """Anthropic's ``usage`` object for the ledger's usage."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    }


def tool_input(arguments: Any) -> JSONObject:
    """A tool call's ``arguments`` string as Anthropic's ``input`` object (a model that wrote
    something other than a JSON object gets it under ``"arguments"``)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def content_blocks(message: Any) -> list[JSONObject]:
    """Anthropic content blocks for an OpenAI assistant ``message``."""
    if not isinstance(message, dict):
        return []
    blocks: list[JSONObject] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    content = message.get("content")
    if isinstance(content, list):  # some providers answer in parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or message_id().replace("msg_", "toolu_")),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks


def chat_to_message(completion: Any, model: str, usage: common_pb2.Usage) -> JSONObject:
    """The Anthropic ``message`` for an OpenAI ``chat.completion`` (its first choice)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(choice.get("message")),
        "stop_reason": stop_reason(choice.get("finish_reason")) or "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }
