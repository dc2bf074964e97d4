"""OpenAI chat requests in Hunyuan's ``ChatCompletions`` shape (PascalCase), and its answers
back.

Reference: https://cloud.tencent.com/document/api/1729/105701 (and the SDK models,
``tencentcloud/hunyuan/v20230901/models.py``): ``Messages`` of ``{Role, Content}`` — an
optional system message first, then user (or tool) and assistant turns alternating, starting
with user and ending with user or tool; an assistant turn that called tools carries
``ToolCalls``, a tool result ``ToolCallId``. ``Tools`` are ``{Type: "function", Function:
{Name, Description, Parameters}}`` with the parameters schema as a JSON *string*.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only


class Unsupported(ValueError):
    """The request asks for something Hunyuan cannot do (the client's 400)."""


FINISH_REASONS = {"stop": "stop", "tool_calls": "tool_calls", "sensitive": "content_filter"}


def _text(content: Any) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported(
            "This Hunyuan relay takes text only; remove the non-text parts."
        ) from None
    except NotContent:
        raise Unsupported("`content` must be a string or a list of parts.") from None


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            out.append(
                {
                    "Id": str(call.get("id") or ""),
                    "Type": "function",
                    "Function": {
                        "Name": str(function.get("name") or ""),
                        "Arguments": str(function.get("arguments") or "{}"),
                    },
                }
            )
    return out


def _messages(openai_messages: list[Any]) -> list[dict[str, Any]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in openai_messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "assistant":
            converted: dict[str, Any] = {
                "Role": "assistant",
                "Content": _text(message.get("content")),
            }
            calls = _tool_calls(message.get("tool_calls"))
            if calls:
                converted["ToolCalls"] = calls
        elif role == "tool":
            converted = {
                "Role": "tool",
                "Content": _text(message.get("content")),
                "ToolCallId": str(message.get("tool_call_id") or ""),
            }
        else:
            converted = {"Role": "user", "Content": _text(message.get("content"))}
        previous = out[-1] if out else None
        if previous is not None and previous["Role"] == converted["Role"] == "user":
            # Hunyuan needs strict turns; consecutive user messages are one turn.
            previous["Content"] += "\n\n" + converted["Content"]
            continue
        out.append(converted)
    if system:
        # Hunyuan takes one system message, first.
        out.insert(0, {"Role": "system", "Content": "\n\n".join(s for s in system if s)})
    return out


def chat_body(request: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """The ``ChatCompletions`` request for an OpenAI chat completion request."""
    body: dict[str, Any] = {
        "Model": model,
        "Messages": _messages(request.get("messages") or []),
        "Stream": stream,
    }
    temperature = request.get("temperature")
    if isinstance(temperature, int | float):
        body["Temperature"] = float(temperature)  # the same 0..2 range as OpenAI
    top_p = request.get("top_p")
    if isinstance(top_p, int | float):
        body["TopP"] = float(top_p)
    tools: list[dict[str, Any]] = [
        {
            "Type": "function",
            "Function": {
                "Name": str(t["function"].get("name") or ""),
                "Description": str(t["function"].get("description") or ""),
                "Parameters": orjson.dumps(
                    t["function"].get("parameters") or {"type": "object", "properties": {}}
                ).decode(),
            },
        }
        for t in request.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if tools:
        body["Tools"] = tools
        choice = request.get("tool_choice")
        if choice in ("none", "auto"):
            body["ToolChoice"] = choice
        elif choice == "required" or isinstance(choice, dict):
            wanted = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
            forced = next((t for t in tools if t["Function"]["Name"] == wanted), tools[0])
            body["ToolChoice"] = "custom"
            body["CustomTool"] = forced
    return body


def usage_of(answer: dict[str, Any]) -> common_pb2.Usage:
    raw = answer.get("Usage")
    raw = raw if isinstance(raw, dict) else {}
    prompt = int(raw.get("PromptTokens") or 0)
    completion = int(raw.get("CompletionTokens") or 0)
    total = int(raw.get("TotalTokens") or 0) or prompt + completion
    return common_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def openai_tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for index, call in enumerate(calls or []):
        function = call.get("Function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            out.append(
                {
                    "index": int(call.get("Index") or index),
                    "id": str(call.get("Id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(function.get("Name") or ""),
                        "arguments": str(function.get("Arguments") or ""),
                    },
                }
            )
    return out


def finish_reason(raw: Any) -> str | None:
    if not raw:
        return None
    return FINISH_REASONS.get(str(raw), "stop")
