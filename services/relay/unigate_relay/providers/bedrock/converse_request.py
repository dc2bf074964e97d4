"""OpenAI chat requests as Bedrock Converse requests, for every model family Bedrock hosts
that is not served through InvokeModel (Llama, Mistral, Nova, Cohere Command R, Jamba, …).

Reference: AWS "Converse" (``POST /model/{modelId}/converse``) and "ConverseStream"
(``/converse-stream``) in the Bedrock runtime API reference: ``messages`` alternate ``user``
and ``assistant`` and begin with ``user``; each has ``content`` blocks (``text``, ``image``
``{"format", "source": {"bytes": base64}}``, ``toolUse`` ``{"toolUseId", "name", "input"}``,
``toolResult`` ``{"toolUseId", "content": [{"text"}], "status"}``); ``system`` is a list of
``{"text"}``; ``inferenceConfig`` holds ``maxTokens``, ``temperature``, ``topP``,
``stopSequences``; ``toolConfig`` holds ``tools`` (``{"toolSpec": {"name", "description",
"inputSchema": {"json": schema}}}``) and ``toolChoice`` (``{"auto": {}}``, ``{"any": {}}`` or
``{"tool": {"name"}}``; no "none": the tools are withheld instead). The model is named by the
path and streaming by the operation, so neither is in the body.

OpenAI's tool messages become ``toolResult`` blocks of a user turn; consecutive turns of the
same role (a tool result then a user message) merge into one, as Converse requires.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

_DATA_URL: Final = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,(.*)$", re.DOTALL)
_INFERENCE: Final = (
    ("max_completion_tokens", "maxTokens"),
    ("max_tokens", "maxTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
)


def _text_of(content: Any, where: str) -> str:
    """The text of a message whose content may only be text (system, tool, assistant)."""
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise ConversionError(f"Only text content is supported at {where}.", where) from None
    except NotContent:
        raise ConversionError(f"Invalid content at {where}.", where) from None


def _image(part: JSONObject, where: str) -> JSONObject:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        # Converse takes image bytes (or an S3 location), never a web URL.
        raise ConversionError(
            f"Bedrock takes images as base64 data URLs (png, jpeg, gif, webp) at {where}.", where
        )
    kind = "jpeg" if match.group(1) == "jpg" else match.group(1)
    return {"image": {"format": kind, "source": {"bytes": match.group(2)}}}


def _user_blocks(content: Any, where: str) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise ConversionError(f"Invalid content at {where}.", where)
    blocks: list[JSONObject] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image(part, f"{where}.content[{i}]"))
        else:
            raise ConversionError(f"Bedrock Converse does not take `{kind}` parts.", where)
    return blocks


def _arguments(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise ConversionError(f"The arguments at {where} are not valid JSON.", where) from None
    if not isinstance(value, dict):
        raise ConversionError(f"The arguments at {where} must be a JSON object.", where)
    return value


def _assistant_blocks(message: JSONObject, where: str) -> list[JSONObject]:
    blocks: list[JSONObject] = []
    text = _text_of(message.get("content"), where)
    if text:
        blocks.append({"text": text})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ConversionError(f"Invalid tool call at {where}.tool_calls[{j}].", where)
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": str(call.get("id") or ""),
                    "name": str(function.get("name") or ""),
                    "input": _arguments(function.get("arguments"), f"{where}.tool_calls[{j}]"),
                }
            }
        )
    return blocks


def _turns(messages: list[Any]) -> tuple[list[JSONObject], list[JSONObject]]:
    """(system blocks, alternating turns) for OpenAI ``messages``."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ConversionError(f"{where} must be an object.", where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), where)
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            turn_role, blocks = "user", _user_blocks(message.get("content"), where)
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(message, where)
        elif role in ("tool", "function"):
            tool_id = message.get("tool_call_id") or message.get("name") or ""
            turn_role = "user"
            blocks = [
                {
                    "toolResult": {
                        "toolUseId": str(tool_id),
                        "content": [{"text": _text_of(message.get("content"), where) or " "}],
                        "status": "success",
                    }
                }
            ]
        else:
            raise ConversionError(f"Unknown role `{role}` at {where}.", where)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _tool_config(chat: JSONObject) -> JSONObject | None:
    tools = [
        t["function"]
        for t in chat.get("tools") or []
        if isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
    ]
    choice = chat.get("tool_choice")
    if not tools or choice == "none":
        return None
    config: JSONObject = {
        "tools": [
            {
                "toolSpec": {
                    "name": str(f.get("name") or ""),
                    **({"description": str(f["description"])} if f.get("description") else {}),
                    "inputSchema": {"json": f.get("parameters") or {"type": "object"}},
                }
            }
            for f in tools
        ]
    }
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not name:
            raise ConversionError("Invalid `tool_choice`.", "tool_choice")
        config["toolChoice"] = {"tool": {"name": str(name)}}
    return config


def converse_body(chat: JSONObject) -> JSONObject:
    """The Converse (or ConverseStream) body for an OpenAI chat request."""
    if chat.get("n") not in (None, 1):
        raise ConversionError("Bedrock returns one choice; `n` must be 1.", "n")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConversionError("`messages` must be a non-empty array.", "messages")
    system, turns = _turns(messages)
    if not turns:
        raise ConversionError("The conversation has no user message.", "messages")
    body: JSONObject = {"messages": turns}
    if system:
        body["system"] = system
    inference: JSONObject = {}
    for ours, theirs in _INFERENCE:
        if chat.get(ours) is not None and theirs not in inference:
            inference[theirs] = chat[ours]
    stop = chat.get("stop")
    if isinstance(stop, str):
        inference["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        inference["stopSequences"] = [str(s) for s in stop]
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(chat)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    elif any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"]):
        # Converse refuses toolUse/toolResult blocks without a toolConfig; a client replaying
        # a tool conversation without its tools cannot be served.
        raise ConversionError(
            "Bedrock needs `tools` with a conversation that has tool calls.", "tools"
        )
    return body
