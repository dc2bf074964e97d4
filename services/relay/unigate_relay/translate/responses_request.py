"""A Responses API request as an OpenAI chat-completions request, so that a channel of any
family serves ``/v1/responses`` (the family's own adapter takes the chat request on to its
native protocol: Anthropic Messages, Gemini generateContent, ...).

Per OpenAI's Responses and chat references: ``instructions`` becomes the first, system
message; ``input`` items become messages in order (``message`` items by role, their
``input_text``/``output_text`` parts as text, ``input_image`` as ``image_url``,
``input_file`` as ``file``; consecutive ``function_call`` items one assistant message's
``tool_calls``; each ``function_call_output`` a ``tool`` message); ``reasoning`` items of
earlier turns are dropped (no chat counterpart). Function tools map one to one, as do
``tool_choice``, ``parallel_tool_calls``, ``temperature``, ``top_p``, ``user``,
``max_output_tokens`` (the family's output field), ``reasoning.effort``
(``reasoning_effort``) and ``text.format`` (``response_format``). Hosted tools (web search,
file search, ...) and ``item_reference`` items have no chat counterpart and are refused.
"""

from __future__ import annotations

from typing import Any

from unigate.responses_items import input_items
from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject


def _text_part(part: JSONObject) -> str | None:
    text = part.get("text")
    return text if isinstance(text, str) else None


def _chat_part(part: JSONObject, where: str) -> JSONObject | None:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "refusal"):
        text = _text_part(part) if kind != "refusal" else part.get("refusal")
        return {"type": "text", "text": text} if isinstance(text, str) else None
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise ConversionError(
                f"{where}: only images given by `image_url` are supported here.", where
            )
        image: JSONObject = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise ConversionError(
                f"{where}: only files given inline by `file_data` are supported here.", where
            )
        return {
            "type": "file",
            "file": {"filename": str(part.get("filename") or "file"), "file_data": data},
        }
    raise ConversionError(f"{where}: content parts of type `{kind}` are not supported.", where)


def _message(item: JSONObject, where: str) -> JSONObject:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise ConversionError(
            f"{where}.role: expected 'user', 'system', 'developer' or 'assistant'.", where
        )
    parts = [
        p
        for j, part in enumerate(item.get("content") or [])
        if (p := _chat_part(part, f"{where}.content[{j}]")) is not None
    ]
    if role != "user" or all(p["type"] == "text" for p in parts):
        # System and assistant turns are text in chat; a text-only user turn is sent as a
        # plain string, which every OpenAI-like provider accepts.
        text = "".join(str(p.get("text") or "") for p in parts if p["type"] == "text")
        return {"role": "system" if role == "developer" else role, "content": text}
    return {"role": role, "content": parts}


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # an array of content parts
        return "".join(str(p.get("text") or "") for p in output if isinstance(p, dict))
    return ""


def chat_messages(request: JSONObject) -> list[JSONObject]:
    """The chat messages for a Responses request's ``instructions`` and ``input``."""
    messages: list[JSONObject] = []
    instructions = request.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    raw = request.get("input")
    if not isinstance(raw, str | list):
        raise ConversionError("input: expected a string or an array of input items.", "input")
    for i, item in enumerate(input_items(raw)):
        where = f"input[{i}]"
        kind = item.get("type")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(item.get("name") or ""),
                    "arguments": str(item.get("arguments") or "{}"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise ConversionError(f"{where}.call_id: expected a string.", where)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": _output_text(item.get("output")),
                }
            )
        elif kind != "reasoning":
            raise ConversionError(
                f"{where}: input items of type `{kind}` are not supported.", where
            )
    return messages


def _tools(tools: Any) -> list[JSONObject]:
    out: list[JSONObject] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise ConversionError(
                f"tools[{i}]: tools of type `{kind}` are not supported on this model.",
                f"tools[{i}]",
            )
        function: JSONObject = {"name": tool.get("name")}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if choice is None:
        return None
    raise ConversionError("tool_choice: only auto, none, required or a function.", "tool_choice")


def _response_format(text: Any) -> JSONObject | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema: JSONObject = {"name": fmt.get("name") or "response", "schema": fmt.get("schema")}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        if isinstance(fmt.get("description"), str):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    raise ConversionError(f"text.format: `{fmt.get('type')}` is not supported.", "text.format")


def responses_to_chat(request: JSONObject, model: str, output_field: str) -> JSONObject:
    """The chat request for Responses request ``request``, to ``model``; an output limit goes
    in ``output_field`` (the family's own chat field for it)."""
    chat: JSONObject = {"model": model, "messages": chat_messages(request)}
    limit = request.get("max_output_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool):
        chat[output_field] = limit
    for name in ("temperature", "top_p"):
        if isinstance(request.get(name), int | float) and not isinstance(request[name], bool):
            chat[name] = request[name]
    if isinstance(request.get("user"), str):
        chat["user"] = request["user"]
    tools = _tools(request.get("tools"))
    if tools:
        chat["tools"] = tools
        choice = _tool_choice(request.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(request.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = request["parallel_tool_calls"]
    reasoning = request.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    response_format = _response_format(request.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if request.get("stream") is True:
        chat["stream"] = True
        # The usage chunk carries what response.completed must report.
        chat["stream_options"] = {"include_usage": True}
    return chat
