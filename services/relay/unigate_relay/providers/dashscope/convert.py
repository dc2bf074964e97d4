"""OpenAI chat requests in DashScope's native text-generation shape, and its answers back.

Reference: https://help.aliyun.com/zh/model-studio/qwen-api-reference (DashScope, "HTTP"):
``{"model", "input": {"messages"}, "parameters": {...}}``; with ``result_format: "message"``
the answer is ``output.choices[].message`` (OpenAI-like ``role``, ``content``,
``tool_calls``) and ``usage.input_tokens`` / ``output_tokens``.
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only


class Unsupported(ValueError):
    """The request asks for something this relay cannot send (the client's 400)."""


_PARAMETERS = ("temperature", "top_p", "seed", "presence_penalty", "tools", "n")


def _text(content: Any) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported("The DashScope text models take text only.") from None
    except NotContent:
        raise Unsupported("`content` must be a string or a list of parts.") from None


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = "system" if message.get("role") == "developer" else str(message.get("role"))
    out: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
    if role == "assistant" and message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if role == "tool":
        out["tool_call_id"] = str(message.get("tool_call_id") or "")
        if message.get("name"):
            out["name"] = message["name"]
    return out


def generation_body(request: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    messages = [_message(m) for m in request.get("messages") or [] if isinstance(m, dict)]
    parameters: dict[str, Any] = {"result_format": "message"}
    if stream:
        # Each event carries only the new text (otherwise every event repeats all of it).
        parameters["incremental_output"] = True
    for field in _PARAMETERS:
        if request.get(field) is not None:
            parameters[field] = request[field]
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(max_tokens, int):
        parameters["max_tokens"] = max_tokens
    stop = request.get("stop")
    if stop:
        parameters["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("tool_choice") is not None and request.get("tools"):
        parameters["tool_choice"] = request["tool_choice"]
    return {"model": model, "input": {"messages": messages}, "parameters": parameters}


def usage_of(answer: dict[str, Any]) -> common_pb2.Usage:
    raw = answer.get("usage")
    raw = raw if isinstance(raw, dict) else {}
    prompt = int(raw.get("input_tokens") or 0)
    completion = int(raw.get("output_tokens") or 0)
    cached = raw.get("prompt_tokens_details")
    cached_tokens = int(cached.get("cached_tokens") or 0) if isinstance(cached, dict) else 0
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(raw.get("total_tokens") or 0) or prompt + completion,
        cached_tokens=cached_tokens,
    )


def finish_reason(raw: Any) -> str | None:
    # DashScope streams the string "null" until the last event.
    if not raw or raw == "null":
        return None
    return str(raw)


def first_choice(answer: dict[str, Any]) -> dict[str, Any]:
    """``output.choices[0]`` of an answer or stream event, or an empty object."""
    output = answer.get("output")
    choices = output.get("choices") if isinstance(output, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}
