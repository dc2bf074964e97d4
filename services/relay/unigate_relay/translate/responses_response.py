"""An OpenAI chat completion as a Responses API ``response`` object, and the ledger's usage in
the Responses API's terms.

Per OpenAI's Responses reference: ``output`` is a list of items — a ``reasoning`` item (its
text as a ``summary_text``) from ``reasoning_content``, a ``message`` item with one
``output_text`` part from ``content``, one ``function_call`` item per tool call; ``status``
is ``incomplete`` (with ``incomplete_details.reason``) when the output limit or a content
filter stopped the model; ``usage`` counts ``input_tokens`` (cache reads included, as
``input_tokens_details.cached_tokens``) and ``output_tokens`` (reasoning included).
"""

from __future__ import annotations

import time
from typing import Any

from unigate.responses_items import new_id
from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject

# The request fields a response object echoes, with OpenAI's defaults.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "store": True,
    "temperature": None,
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "user": None,
}


def responses_usage(usage: common_pb2.Usage) -> JSONObject:
    """The Responses API's ``usage`` object for the ledger's usage."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": min(usage.cached_tokens, usage.prompt_tokens)},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def response_skeleton(request: JSONObject, model: str, response_id: str) -> JSONObject:
    """The response object before any output: what ``response.created`` carries."""
    response: JSONObject = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "reasoning": {"effort": None, "summary": None},
        "text": request.get("text") if isinstance(request.get("text"), dict) else None,
        "truncation": "disabled",
        "usage": None,
    }
    if response["text"] is None:
        response["text"] = {"format": {"type": "text"}}
    if isinstance(request.get("reasoning"), dict):
        response["reasoning"] = {"summary": None, **request["reasoning"]}
    for name, default in _ECHOED.items():
        value = request.get(name)
        response[name] = default if value is None else value
    return response


def finished(response: JSONObject, finish_reason: str | None, usage: common_pb2.Usage) -> None:
    """Set the final status (from the chat ``finish_reason``) and usage on ``response``."""
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
        finish_reason or ""
    )
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = responses_usage(usage)


def reasoning_item(text: str) -> JSONObject:
    return {
        "type": "reasoning",
        "id": new_id("rs"),
        "summary": [{"type": "summary_text", "text": text}],
    }


def message_item(text: str, status: str = "completed") -> JSONObject:
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_item(call_id: str, name: str, arguments: str) -> JSONObject:
    return {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call_id or new_id("call"),
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def output_items(message: Any) -> list[JSONObject]:
    """The Responses API output items for an OpenAI assistant ``message``."""
    if not isinstance(message, dict):
        return []
    items: list[JSONObject] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        items.append(reasoning_item(reasoning))
    content = message.get("content")
    if isinstance(content, list):  # some providers answer in parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        items.append(message_item(content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            items.append(
                function_call_item(
                    str(call.get("id") or ""),
                    str(function.get("name") or ""),
                    arguments if isinstance(arguments, str) else "{}",
                )
            )
    return items


def chat_to_response(
    completion: Any, request: JSONObject, model: str, response_id: str, usage: common_pb2.Usage
) -> JSONObject:
    """The ``response`` object for an OpenAI ``chat.completion`` (its first choice)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    response = response_skeleton(request, model, response_id)
    response["output"] = output_items(choice.get("message"))
    finished(response, choice.get("finish_reason"), usage)
    return response
