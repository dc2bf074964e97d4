"""An Anthropic Messages request as an OpenAI chat-completions request, so that a channel of
any family serves the gateway's ``/v1/messages``.

Per Anthropic's Messages reference and OpenAI's chat reference: ``system`` (a string or text
blocks) becomes the first, system message; a user turn's ``tool_result`` blocks become
``tool`` messages (before the rest of the turn, which follows as a user message); text and
image blocks become content parts (base64 sources as ``data:`` URLs, url sources as they
are), PDF documents become ``file`` parts, plain-text documents text; an assistant turn's
``tool_use`` blocks become ``tool_calls``. ``max_tokens``, ``stop_sequences``,
``temperature``, ``top_p``, ``tools``, ``tool_choice`` and ``metadata.user_id`` have OpenAI
counterparts. Extended thinking (``thinking``) and ``top_k`` have none and are dropped, as are
thinking blocks of earlier turns; server tools (web search, ...) are refused.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject

_PDF: Final = "application/pdf"


def _text_of_blocks(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            b["text"]
            for b in value
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""


def _source_url(source: Any, where: str) -> str:
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            return f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise ConversionError(f"{where}.source: expected a base64 or url source.", where)


def _part(block: Any, where: str) -> JSONObject | None:
    if not isinstance(block, dict):
        raise ConversionError(f"{where}: expected a content block object.", where)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"type": "text", "text": text} if isinstance(text, str) else None
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source_url(block.get("source"), where)}}
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return {"type": "text", "text": source["data"]}
        if source.get("type") == "base64" and source.get("media_type") == _PDF:
            name = str(block.get("title") or "document.pdf")
            data = f"data:{_PDF};base64,{source.get('data')}"
            return {"type": "file", "file": {"filename": name, "file_data": data}}
        raise ConversionError(f"{where}: only PDF and plain-text documents are supported.", where)
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise ConversionError(f"{where}: content blocks of type `{kind}` are not supported.", where)


def _content(parts: list[JSONObject]) -> str | list[JSONObject]:
    """A single text stays a plain string (what every OpenAI-like provider accepts)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_message(block: JSONObject, where: str) -> JSONObject:
    content = block.get("content")
    if isinstance(content, list):
        text = _text_of_blocks(content)
    else:
        text = content if isinstance(content, str) else ""
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        raise ConversionError(f"{where}.tool_use_id: expected a string.", where)
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _user_messages(content: Any, where: str) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise ConversionError(f"{where}.content: expected a string or an array.", where)
    tools: list[JSONObject] = []
    parts: list[JSONObject] = []
    for j, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "tool_result":
            tools.append(_tool_message(block, f"{where}.content.{j}"))
        else:
            part = _part(block, f"{where}.content.{j}")
            if part is not None:
                parts.append(part)
    return tools + ([{"role": "user", "content": _content(parts)}] if parts else [])


def _assistant_message(content: Any, where: str) -> JSONObject | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise ConversionError(f"{where}.content: expected a string or an array.", where)
    texts: list[str] = []
    calls: list[JSONObject] = []
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise ConversionError(f"{where}.content.{j}: expected an object.", where)
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):
            raise ConversionError(f"{where}.content.{j}: `{kind}` blocks are not supported.")
    if not texts and not calls:
        return None
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(tools: Any) -> list[JSONObject]:
    out = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise ConversionError(f"tools.{i}: tools of type `{kind}` are not supported.")
        function: JSONObject = {"name": tool.get("name")}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object"}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """OpenAI's (tool_choice, parallel_tool_calls) for Anthropic's ``tool_choice``."""
    if not isinstance(choice, dict):
        return None, None
    kind = choice.get("type")
    mapped: Any = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if kind == "tool":
        mapped = {"type": "function", "function": {"name": choice.get("name")}}
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    return mapped, parallel


def messages_to_chat(request: JSONObject, model: str) -> JSONObject:
    """The OpenAI chat request for Anthropic Messages request ``request``, to ``model``."""
    chat: JSONObject = {"model": model}
    messages: list[JSONObject] = []
    system = _text_of_blocks(request.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    turns = request.get("messages")
    if not isinstance(turns, list):
        raise ConversionError("messages: expected an array.", "messages")
    for i, turn in enumerate(turns):
        where = f"messages.{i}"
        if not isinstance(turn, dict):
            raise ConversionError(f"{where}: expected an object.", where)
        if turn.get("role") == "user":
            messages.extend(_user_messages(turn.get("content"), where))
        elif turn.get("role") == "assistant":
            message = _assistant_message(turn.get("content"), where)
            if message is not None:
                messages.append(message)
        else:
            raise ConversionError(f"{where}.role: expected 'user' or 'assistant'.", where)
    chat["messages"] = messages
    if isinstance(request.get("max_tokens"), int):
        chat["max_tokens"] = request["max_tokens"]
    stops = request.get("stop_sequences")
    if isinstance(stops, list) and stops:
        chat["stop"] = stops
    for name in ("temperature", "top_p"):
        if isinstance(request.get(name), int | float) and not isinstance(request[name], bool):
            chat[name] = request[name]
    metadata = request.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    tools = _tools(request.get("tools"))
    if tools:
        chat["tools"] = tools
        choice, parallel = _tool_choice(request.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    if request.get("stream") is True:
        chat["stream"] = True
        # The usage chunk carries what message_delta must report.
        chat["stream_options"] = {"include_usage": True}
    return chat
