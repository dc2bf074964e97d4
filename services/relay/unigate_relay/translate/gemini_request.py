"""A Gemini-native request (``GenerateContentRequest``, ``EmbedContentRequest``,
``BatchEmbedContentsRequest``; https://ai.google.dev/api) as the OpenAI chat or embeddings
request another family serves.

* ``systemInstruction`` → a system message; ``contents`` turns ``user`` → user, ``model`` →
  assistant; text parts are joined; ``inlineData`` images become data-URL ``image_url``
  parts, ``fileData`` a URL part; thought parts (``thought: true``) are the model's own
  reasoning and are not sent back;
* ``functionCall`` parts → the assistant's ``tool_calls`` (Gemini's ``id`` kept, else one is
  made), ``functionResponse`` parts → ``tool`` messages answering the call of that id, else
  the oldest unanswered call of that name;
* ``tools[].functionDeclarations`` → function tools, their OpenAPI-subset schemas written as
  JSON Schema (Google's upper-case ``type`` names lowered; ``parametersJsonSchema`` as is);
  ``toolConfig.functionCallingConfig`` AUTO/ANY/NONE → auto/required/none (ANY with one
  allowed name: that function);
* ``generationConfig``: temperature, topP, maxOutputTokens, stopSequences, candidateCount,
  presence/frequency penalties, seed; ``responseMimeType: application/json`` with
  ``responseSchema``/``responseJsonSchema`` → ``response_format`` json_schema, without a
  schema json_object. Settings with no OpenAI counterpart (``topK``, safety settings,
  thinking budgets, cached content) are dropped.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from unigate_relay.providers.anthropic.wire import ConversionError, JSONObject

_ROLES = {"user": "user", "model": "assistant", "function": "user", "": "user"}
_TOOL_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}


def _parts(content: Any, where: str) -> list[Any]:
    if not isinstance(content, dict):
        raise ConversionError(f"{where}: expected a Content object.", where)
    parts = content.get("parts")
    if parts is None:
        return []
    if not isinstance(parts, list):
        raise ConversionError(f"{where}.parts: expected an array.", f"{where}.parts")
    return parts


def _media_part(part: JSONObject, where: str) -> JSONObject:
    inline = part.get("inlineData")
    if isinstance(inline, dict):
        mime, data = inline.get("mimeType"), inline.get("data")
        if not isinstance(mime, str) or not isinstance(data, str):
            raise ConversionError(f"{where}.inlineData: needs mimeType and data.", where)
        if not mime.startswith("image/"):
            raise ConversionError(
                f"{where}.inlineData: `{mime}` parts cannot be sent to this model.", where
            )
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    file = part.get("fileData")
    uri = file.get("fileUri") if isinstance(file, dict) else None
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        raise ConversionError(
            f"{where}.fileData: only http(s) image URLs can be sent to this model.", where
        )
    return {"type": "image_url", "image_url": {"url": uri}}


class _Calls:
    """The function calls of the conversation so far, so that each ``functionResponse``
    answers the right one."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []  # (id, name), oldest first

    def made(self, call: JSONObject) -> JSONObject:
        name = str(call.get("name") or "")
        cid = str(call.get("id") or "") or "call_" + secrets.token_hex(12)
        self.open.append((cid, name))
        args = call.get("args")
        return {
            "id": cid,
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args or {}).decode()},
        }

    def answered(self, response: JSONObject) -> str:
        wanted_id, name = response.get("id"), str(response.get("name") or "")
        for i, (cid, called) in enumerate(self.open):
            if (wanted_id and cid == wanted_id) or (not wanted_id and called == name):
                del self.open[i]
                return cid
        # An answer to a call this conversation does not show (the provider refuses orphans,
        # so it is sent as the answer to a call of that name).
        return str(wanted_id or "call_" + secrets.token_hex(12))


def _turn(content: Any, where: str, calls: _Calls) -> list[JSONObject]:
    """The OpenAI messages for one Gemini ``Content``."""
    role = _ROLES.get(str(content.get("role") or "") if isinstance(content, dict) else "")
    if role is None:
        raise ConversionError(
            f"{where}.role: expected 'user' or 'model', got {content.get('role')!r}.",
            f"{where}.role",
        )
    parts: list[JSONObject] = []
    tool_calls: list[JSONObject] = []
    results: list[JSONObject] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise ConversionError(f"{at}: expected a Part object.", at)
        if part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"type": "text", "text": part["text"]})
        elif "inlineData" in part or "fileData" in part:
            parts.append(_media_part(part, at))
        elif isinstance(part.get("functionCall"), dict):
            tool_calls.append(calls.made(part["functionCall"]))
        elif isinstance(part.get("functionResponse"), dict):
            answer = part["functionResponse"]
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": calls.answered(answer),
                    "content": orjson.dumps(answer.get("response") or {}).decode(),
                }
            )
        else:
            kinds = ", ".join(sorted(k for k in part if k not in ("thoughtSignature",)))
            raise ConversionError(f"{at}: `{kinds}` parts cannot be sent to this model.", at)
    if role == "assistant":
        texts = [p["text"] for p in parts if p["type"] == "text"]
        if len(texts) != len(parts):
            raise ConversionError(f"{where}: a model turn may hold only text and calls.", where)
        if not texts and not tool_calls:
            return []
        message: JSONObject = {"role": "assistant", "content": "".join(texts) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return [message]
    out = list(results)
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def json_schema(schema: Any) -> Any:
    """A Gemini ``Schema`` (OpenAPI subset, possibly with Google's upper-case type names) as
    JSON Schema."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: JSONObject = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "nullable":
            continue
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: json_schema(v) for name, v in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tools(tools: Any) -> list[JSONObject]:
    out: list[JSONObject] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict):
            raise ConversionError(f"tools[{i}]: expected a Tool object.", f"tools[{i}]")
        others = sorted(k for k in tool if k != "functionDeclarations")
        if others:
            raise ConversionError(
                f"tools[{i}]: `{', '.join(others)}` tools are Gemini's own and cannot be sent"
                " to this model.",
                f"tools[{i}]",
            )
        for declaration in tool.get("functionDeclarations") or []:
            if not isinstance(declaration, dict) or not declaration.get("name"):
                raise ConversionError(
                    f"tools[{i}].functionDeclarations: each needs a name.", f"tools[{i}]"
                )
            function: JSONObject = {"name": declaration["name"]}
            if isinstance(declaration.get("description"), str):
                function["description"] = declaration["description"]
            if isinstance(declaration.get("parametersJsonSchema"), dict):
                function["parameters"] = declaration["parametersJsonSchema"]
            elif isinstance(declaration.get("parameters"), dict):
                function["parameters"] = json_schema(declaration["parameters"])
            else:
                function["parameters"] = {"type": "object", "properties": {}}
            out.append({"type": "function", "function": function})
    return out


def _tool_choice(config: Any) -> Any:
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return None
    mode = _TOOL_MODES.get(str(calling.get("mode") or "AUTO").upper())
    names = calling.get("allowedFunctionNames")
    if mode == "required" and isinstance(names, list) and len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    return mode


def _generation(config: Any, chat: JSONObject) -> None:
    if not isinstance(config, dict):
        return
    simple = {
        "temperature": "temperature",
        "topP": "top_p",
        "maxOutputTokens": "max_tokens",
        "candidateCount": "n",
        "presencePenalty": "presence_penalty",
        "frequencyPenalty": "frequency_penalty",
        "seed": "seed",
    }
    for name, openai_name in simple.items():
        value = config.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            chat[openai_name] = value
    stops = config.get("stopSequences")
    if isinstance(stops, list) and stops:
        chat["stop"] = stops
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if isinstance(schema, dict):
        if "responseSchema" in config and "responseJsonSchema" not in config:
            schema = json_schema(schema)
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }
    elif config.get("responseMimeType") == "application/json":
        chat["response_format"] = {"type": "json_object"}


def generate_to_chat(request: JSONObject, model: str, *, stream: bool) -> JSONObject:
    """The OpenAI chat request for a ``GenerateContentRequest``, to ``model``."""
    messages: list[JSONObject] = []
    system = request.get("systemInstruction")
    if system is not None:
        texts = [
            p.get("text")
            for p in _parts(system, "systemInstruction")
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        if any(texts):
            messages.append({"role": "system", "content": "\n".join(t for t in texts if t)})
    contents = request.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise ConversionError("contents: must not be empty.", "contents")
    calls = _Calls()
    for i, content in enumerate(contents):
        messages.extend(_turn(content, f"contents[{i}]", calls))
    if not messages or all(m["role"] == "system" for m in messages):
        raise ConversionError("contents: no part holds anything to send.", "contents")
    chat: JSONObject = {"model": model, "messages": messages}
    tools = _tools(request.get("tools"))
    if tools:
        chat["tools"] = tools
        choice = _tool_choice(request.get("toolConfig"))
        if choice is not None:
            chat["tool_choice"] = choice
    _generation(request.get("generationConfig"), chat)
    if stream:
        chat["stream"] = True
        # The usage chunk carries what the last chunk's usageMetadata reports.
        chat["stream_options"] = {"include_usage": True}
    return chat


def count_request(request: JSONObject) -> JSONObject:
    """The ``GenerateContentRequest`` a ``countTokens`` request counts (its own
    ``generateContentRequest``, else its ``contents``)."""
    inner = request.get("generateContentRequest")
    if isinstance(inner, dict):
        return inner
    return {"contents": request.get("contents")}


def _embed_text(item: Any, where: str) -> str:
    if not isinstance(item, dict):
        raise ConversionError(f"{where}: expected an object.", where)
    texts = []
    for j, part in enumerate(_parts(item.get("content"), f"{where}.content")):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            at = f"{where}.content.parts[{j}]"
            raise ConversionError(f"{at}: only text can be embedded by this model.", at)
        texts.append(part["text"])
    text = " ".join(texts)
    if not text:
        raise ConversionError(f"{where}.content: must not be empty.", f"{where}.content")
    return text


def embed_to_embeddings(endpoint_batch: bool, request: JSONObject, model: str) -> JSONObject:
    """The OpenAI embeddings request for an ``embedContent`` (one input) or a
    ``batchEmbedContents`` (one input per request) body."""
    if endpoint_batch:
        items = request.get("requests")
        if not isinstance(items, list) or not items:
            raise ConversionError("requests: must not be empty.", "requests")
        texts = [_embed_text(item, f"requests[{i}]") for i, item in enumerate(items)]
        dims = {item.get("outputDimensionality") for item in items if isinstance(item, dict)}
    else:
        texts = [_embed_text(request, "request")]
        dims = {request.get("outputDimensionality")}
    body: JSONObject = {"model": model, "input": texts, "encoding_format": "float"}
    dims.discard(None)
    if len(dims) > 1:
        raise ConversionError(
            "outputDimensionality: every request of a batch must ask for the same size.",
            "outputDimensionality",
        )
    if dims:
        size = dims.pop()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConversionError(
                "outputDimensionality: expected a positive integer.", "outputDimensionality"
            )
        body["dimensions"] = size
    return body
