"""OpenAI chat and embedding requests in Qianfan's ERNIE shape, and its answers back.

Reference: the ERNIE chat API (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/jlil56u11):
``messages`` alternate user (or function) and assistant, start with user and have an odd
length; the system prompt is the top-level ``system``; ``functions`` offer tools and the
reply's ``function_call`` calls one; a function result is a ``function`` message naming it.
"""

from __future__ import annotations

import secrets
from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only


class Unsupported(ValueError):
    """The request asks for something ERNIE cannot do (the client's 400)."""


# ERNIE's finish_reason → OpenAI's. "normal" is a plain end.
FINISH_REASONS = {
    "normal": "stop",
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
}


def _text(content: Any) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported("ERNIE models take text only; remove the non-text parts.") from None
    except NotContent:
        raise Unsupported("`content` must be a string or a list of parts.") from None


def _function_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call id → function name, from the assistant messages that made the calls."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[str(call.get("id"))] = str(call["function"].get("name") or "")
    return names


def _messages(openai_messages: list[Any]) -> tuple[list[dict[str, Any]], str]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    messages = [m for m in openai_messages if isinstance(m, dict)]
    names = _function_names(messages)
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "assistant":
            converted: dict[str, Any] = {
                "role": "assistant",
                "content": _text(message.get("content")),
            }
            calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
            call = calls[0].get("function") if calls else message.get("function_call")
            if isinstance(call, dict):
                converted["function_call"] = {
                    "name": str(call.get("name") or ""),
                    "arguments": str(call.get("arguments") or "{}"),
                }
        elif role in ("tool", "function"):
            name = message.get("name") or names.get(str(message.get("tool_call_id")), "")
            converted = {"role": "function", "name": name, "content": _text(message.get("content"))}
        else:
            converted = {"role": "user", "content": _text(message.get("content"))}
        previous = out[-1] if out else None
        if previous is not None and previous["role"] == converted["role"] == "user":
            # OpenAI allows consecutive user messages; ERNIE needs strict turns. They are one
            # turn, so they become one message.
            previous["content"] = previous["content"] + "\n\n" + converted["content"]
            continue
        out.append(converted)
    return out, "\n\n".join(s for s in system if s)


def chat_body(request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The ERNIE request for an OpenAI chat completion request."""
    messages, system = _messages(request.get("messages") or [])
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    temperature = request.get("temperature")
    if isinstance(temperature, int | float):
        # ERNIE takes (0, 1.0]; OpenAI's 0..2 is squeezed into it, 0 becoming its smallest.
        body["temperature"] = min(max(float(temperature), 0.01), 1.0)
    top_p = request.get("top_p")
    if isinstance(top_p, int | float):
        body["top_p"] = min(max(float(top_p), 0.0), 1.0)
    penalty = request.get("frequency_penalty")
    if isinstance(penalty, int | float) and penalty > 0:
        # ERNIE's penalty_score is 1.0 (none) .. 2.0; OpenAI's positive penalty is 0 .. 2.
        body["penalty_score"] = min(1.0 + float(penalty) / 2, 2.0)
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        body["max_output_tokens"] = max(max_tokens, 2)  # ERNIE's floor is 2
    stop = request.get("stop")
    if isinstance(stop, str):
        body["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop"] = [str(s) for s in stop]
    if isinstance(request.get("user"), str) and request["user"]:
        body["user_id"] = request["user"]
    functions = _functions(request)
    if functions:
        body["functions"] = functions
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            body["tool_choice"] = {
                "type": "function",
                "function": {"name": str(choice["function"].get("name") or "")},
            }
    return body


def _functions(request: dict[str, Any]) -> list[dict[str, Any]]:
    if request.get("tool_choice") == "none":
        return []
    out = []
    for tool in request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            continue
        out.append(
            {
                "name": str(function.get("name") or ""),
                "description": str(function.get("description") or ""),
                "parameters": function.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    for function in request.get("functions") or []:  # the deprecated OpenAI field
        if isinstance(function, dict):
            out.append(
                {
                    "name": str(function.get("name") or ""),
                    "description": str(function.get("description") or ""),
                    "parameters": function.get("parameters")
                    or {"type": "object", "properties": {}},
                }
            )
    return out


def embedding_body(request: dict[str, Any]) -> dict[str, Any]:
    """The Qianfan embedding request: ``input`` is always a list of strings."""
    raw = request.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        texts = list(raw)
    else:
        raise Unsupported("Baidu embeddings take a string or a list of strings as `input`.")
    body: dict[str, Any] = {"input": texts}
    if isinstance(request.get("user"), str) and request["user"]:
        body["user_id"] = request["user"]
    return body


def usage_of(answer: dict[str, Any]) -> common_pb2.Usage:
    raw = answer.get("usage")
    raw = raw if isinstance(raw, dict) else {}
    prompt = int(raw.get("prompt_tokens") or 0)
    total = int(raw.get("total_tokens") or 0)
    completion = int(raw.get("completion_tokens") or max(total - prompt, 0))
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total or prompt + completion,
    )


def tool_calls_of(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """ERNIE's ``function_call`` as OpenAI ``tool_calls`` (ERNIE calls one at a time)."""
    call = answer.get("function_call")
    if not isinstance(call, dict) or not call.get("name"):
        return None
    return [
        {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {
                "name": str(call["name"]),
                "arguments": str(call.get("arguments") or "{}"),
            },
        }
    ]


def finish_reason_of(answer: dict[str, Any], has_call: bool) -> str:
    if has_call:
        return "tool_calls"
    return FINISH_REASONS.get(str(answer.get("finish_reason") or "normal"), "stop")
