"""OpenAI chat and embedding requests → Gemini ``generateContent`` / ``batchEmbedContents``.

References: https://ai.google.dev/api/generate-content, https://ai.google.dev/gemini-api/docs/
function-calling, https://ai.google.dev/gemini-api/docs/thinking (budgets of Gemini's own
OpenAI compatibility layer: https://ai.google.dev/gemini-api/docs/openai#thinking), and
https://ai.google.dev/api/embeddings#method:-models.batchembedcontents.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any, Final

import orjson

from unigate_relay.providers.gemini.ids import parse_tool_call_id
from unigate_relay.providers.gemini.schema import (
    SchemaNotExpressible,
    clean_schema,
    function_parameters,
)
from unigate_relay.providers.gemini.wire import (
    Content,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    GenerateContentRequest,
    GenerationConfig,
    Part,
    ThinkingConfig,
    ToolConfig,
)
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only


class InvalidRequest(Exception):
    """The client's request cannot be expressed to Gemini (answered 400, no upstream call)."""

    def __init__(self, message: str, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


_DATA_URL: Final = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[\w=.+-]+)*;base64,(.*)$", re.S)
# Gemini's OpenAI layer: reasoning_effort low/medium/high = 1,024/8,192/24,576 thinking tokens.
_THINKING_BUDGETS: Final = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_AUDIO_TYPES: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}


def _text_of(content: Any, param: str) -> str:
    try:
        return text_only(content, none_is_empty=True, refusals=True)
    except NonTextPart as exc:
        raise InvalidRequest(
            f"Only text parts are allowed in {param}.", f"{param}[{exc.index}]"
        ) from None
    except NotContent:
        raise InvalidRequest(f"{param} must be a string or an array of parts.", param) from None


def _blob(url: str, param: str) -> Part:
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(f"{param} is not a base64 data URL.", param)
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _image(url: Any, param: str) -> Part:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{param} must be a URL.", param)
    if url.startswith("data:"):
        return _blob(url, param)
    if url.startswith(("http://", "https://", "gs://")):
        # Gemini reads remote files itself (fileData); its mimeType is required by Vertex.
        guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
        mime = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise InvalidRequest(f"{param} must be an http(s) or data URL.", param)


def _user_parts(content: Any, param: str) -> list[Part]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or an array of parts.", param)
    parts: list[Part] = []
    for i, item in enumerate(content):
        where = f"{param}[{i}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            if item.get("text"):
                parts.append({"text": str(item["text"])})
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_image(url, f"{where}.image_url.url"))
        elif kind == "input_audio":
            audio = item.get("input_audio") or {}
            mime = _AUDIO_TYPES.get(str(audio.get("format")), "audio/wav")
            parts.append({"inlineData": {"mimeType": mime, "data": str(audio.get("data") or "")}})
        elif kind == "file":
            data = (item.get("file") or {}).get("file_data")
            if not isinstance(data, str):
                raise InvalidRequest("Files must be sent inline as file_data.", where)
            parts.append(_blob(data, f"{where}.file.file_data"))
        else:
            raise InvalidRequest(f"Unsupported content part type {kind!r}.", f"{where}.type")
    return parts


def _arguments(raw: Any, param: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest(f"{param} is not valid JSON.", param) from None
    if not isinstance(args, dict):
        raise InvalidRequest(f"{param} must be a JSON object.", param)
    return args


def _tool_result(content: Any, param: str) -> dict[str, Any]:
    text = _text_of(content, param)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    # functionResponse.response is a JSON object (a Struct): objects go as they are, any
    # other result under "content".
    return parsed if isinstance(parsed, dict) else {"content": text}


class _Contents:
    """Builds ``contents``: consecutive turns of one role merge into one, except that a turn
    of function responses holds nothing else (Gemini pairs it with the call turn before)."""

    def __init__(self) -> None:
        self.contents: list[Content] = []
        self._kinds: list[tuple[str, bool]] = []

    def add(self, role: str, parts: list[Part], responses: bool = False) -> None:
        if not parts:
            return
        kind = (role, responses)
        if self._kinds and self._kinds[-1] == kind:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": list(parts)})
            self._kinds.append(kind)


def _model_turn(
    message: dict[str, Any], param: str, names: dict[str, str], pending: list[str]
) -> list[Part]:
    parts: list[Part] = []
    text = _text_of(message.get("content"), f"{param}.content")
    if text:
        parts.append({"text": text})
    calls = message.get("tool_calls") or []
    if message.get("function_call"):
        calls = [{"id": "", "function": message["function_call"]}]
    pending.clear()
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise InvalidRequest("A tool call needs a function name.", f"{param}.tool_calls[{i}]")
        name = str(function["name"])
        fc: FunctionCall = {
            "name": name,
            "args": _arguments(function.get("arguments"), f"{param}.tool_calls[{i}].arguments"),
        }
        call_id = str(call.get("id") or "")
        gemini_id, signature = parse_tool_call_id(call_id)
        if gemini_id:
            fc["id"] = gemini_id
        part: Part = {"functionCall": fc}
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
        names[call_id] = name
        pending.append(name)
    return parts


def _response_part(
    message: dict[str, Any], param: str, names: dict[str, str], pending: list[str]
) -> Part:
    call_id = str(message.get("tool_call_id") or "")
    # By id when the call is in this conversation, else by order after the last call turn.
    name = message.get("name") if message["role"] == "function" else names.get(call_id)
    if not name and pending:
        name = pending[0]
    if not name:
        raise InvalidRequest(
            "A tool message must answer a tool call of an earlier assistant message.",
            f"{param}.tool_call_id",
        )
    if pending and name in pending:
        pending.remove(name)
    response: FunctionResponse = {
        "name": str(name),
        "response": _tool_result(message.get("content"), f"{param}.content"),
    }
    gemini_id, _ = parse_tool_call_id(call_id)
    if gemini_id:
        response["id"] = gemini_id
    return {"functionResponse": response}


def _thinking(body: dict[str, Any]) -> ThinkingConfig | None:
    google = (
        body.get("extra_body", {}).get("google")
        if isinstance(body.get("extra_body"), dict)
        else None
    )
    google = google or body.get("google")
    explicit = google.get("thinking_config") if isinstance(google, dict) else None
    if isinstance(explicit, dict):
        config: ThinkingConfig = {}
        if isinstance(explicit.get("thinking_budget"), int):
            config["thinkingBudget"] = explicit["thinking_budget"]
        if isinstance(explicit.get("include_thoughts"), bool):
            config["includeThoughts"] = explicit["include_thoughts"]
        return config or None
    effort = body.get("reasoning_effort")
    if effort == "none":
        return {"thinkingBudget": 0}
    if isinstance(effort, str) and effort in _THINKING_BUDGETS:
        return {"thinkingBudget": _THINKING_BUDGETS[effort], "includeThoughts": True}
    return None


def _generation_config(body: dict[str, Any]) -> GenerationConfig:
    config: GenerationConfig = {}
    number = (int, float)
    if isinstance(body.get("temperature"), number):
        config["temperature"] = body["temperature"]
    if isinstance(body.get("top_p"), number):
        config["topP"] = body["top_p"]
    if isinstance(body.get("top_k"), int):
        config["topK"] = body["top_k"]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and limit > 0:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s]
    if stops:
        config["stopSequences"] = stops[:5]
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    for openai_name, gemini_name in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if isinstance(body.get(openai_name), number):
            config[gemini_name] = body[openai_name]  # type: ignore[literal-required]
    if isinstance(body.get("seed"), int):
        config["seed"] = body["seed"]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        try:
            cleaned = clean_schema(schema, response=True)
        except SchemaNotExpressible as exc:
            raise InvalidRequest(exc.message, "response_format.json_schema." + exc.where) from None
        if cleaned:
            config["responseSchema"] = cleaned
    elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise InvalidRequest(
            "`response_format.type` must be 'text', 'json_object' or 'json_schema'.",
            "response_format",
        )
    thinking = _thinking(body)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _declarations(body: dict[str, Any]) -> list[FunctionDeclaration]:
    functions: list[Any] = [
        tool.get("function")
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
    ]
    functions += list(body.get("functions") or [])
    declarations: list[FunctionDeclaration] = []
    for function in functions:
        if not isinstance(function, dict) or not function.get("name"):
            raise InvalidRequest("Every function needs a name.", "tools")
        declaration: FunctionDeclaration = {"name": str(function["name"])}
        if isinstance(function.get("description"), str) and function["description"]:
            declaration["description"] = function["description"]
        try:
            parameters = function_parameters(function.get("parameters"))
        except SchemaNotExpressible as exc:
            raise InvalidRequest(exc.message, "tools") from None
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def _tool_config(body: dict[str, Any]) -> ToolConfig | None:
    choice = body.get("tool_choice", body.get("function_call"))
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict):
        name = (choice.get("function") or choice).get("name")
        if isinstance(name, str):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def chat_request(body: dict[str, Any]) -> GenerateContentRequest:
    """The Gemini request for an OpenAI chat completion request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array.", "messages")
    system: list[str] = []
    contents = _Contents()
    names: dict[str, str] = {}
    pending: list[str] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object.", param)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"{param}.content")
            if text:
                system.append(text)
        elif role == "user":
            contents.add("user", _user_parts(message.get("content"), f"{param}.content"))
        elif role == "assistant":
            contents.add("model", _model_turn(message, param, names, pending))
        elif role in ("tool", "function"):
            contents.add("user", [_response_part(message, param, names, pending)], True)
        else:
            raise InvalidRequest(f"Unsupported role {role!r}.", f"{param}.role")
    request: GenerateContentRequest = {"contents": contents.contents}
    if system:
        instruction: Content = {"parts": [{"text": "\n".join(system)}]}
        if contents.contents:
            request["systemInstruction"] = instruction
        else:
            # Gemini needs at least one content; a system-only prompt is asked as the user.
            request["contents"] = [{"role": "user", "parts": instruction["parts"]}]
    if not request["contents"]:
        raise InvalidRequest("The messages hold no content to send.", "messages")
    declarations = _declarations(body)
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body)
        if tool_config is not None:
            request["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        request["generationConfig"] = config
    return request


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The texts of an OpenAI embeddings request (Gemini embeds text only)."""
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) for v in inputs):
        raise InvalidRequest(
            "Gemini embeddings take a string or an array of strings (not token ids).", "input"
        )
    if any(not v for v in inputs):
        raise InvalidRequest("input must not contain empty strings.", "input")
    return inputs


def batch_embed_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """``batchEmbedContents``'s body: one ``EmbedContentRequest`` per input text."""
    dimensions = body.get("dimensions")
    requests = []
    for text in embedding_inputs(body):
        request: dict[str, Any] = {
            "model": f"models/{model}",
            "content": {"parts": [{"text": text}]},
        }
        if isinstance(dimensions, int) and dimensions > 0:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}
