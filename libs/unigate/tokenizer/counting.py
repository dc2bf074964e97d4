"""Token counts of requests and texts by OpenAI's published accounting rules.

Chat prompts follow OpenAI's cookbook ("How to count tokens with tiktoken"): every message
costs 3 tokens plus its string fields (a ``name`` one more), every reply is primed with 3, and
tool definitions are rendered as the cookbook's gpt-4o formula counts them. Images follow the
vision pricing guide (see :mod:`unigate.tokenizer.images`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import orjson
import tiktoken
from tiktoken.model import encoding_name_for_model

from unigate import gemini_endpoints as gemini
from unigate.tokenizer.bundled import BUNDLED, get_encoding
from unigate.tokenizer.images import image_part_tokens

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# The cookbook's constants for gpt-4o-era tool definitions.
_FUNC_INIT, _PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 7, 3, 3, -3, 3, 12

# Models that are not OpenAI's get the newest encoding: the closest public approximation.
_DEFAULT_ENCODING = "o200k_base"


@functools.lru_cache(maxsize=1024)
def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The encoding OpenAI uses for ``model`` (o200k_base for models it does not know);
    remembered per model name, as admission counts every prompt with it."""
    try:
        name = encoding_name_for_model(model)
    except KeyError:
        name = _DEFAULT_ENCODING
    return get_encoding(name if name in BUNDLED else _DEFAULT_ENCODING)


def count_text(text: str, model: str = "") -> int:
    """Tokens of ``text`` for ``model``; special-token markers count as plain text."""
    if not text:
        return 0
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _content_tokens(content: Any, enc: tiktoken.Encoding) -> int:
    if isinstance(content, str):
        return len(enc.encode(content, disallowed_special=()))
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("image_url", "input_image"):
            total += image_part_tokens(part)
        elif kind in ("text", "input_text", "output_text", "refusal"):
            value = part.get(kind if kind == "refusal" else "text")
            total += len(enc.encode(value, disallowed_special=())) if isinstance(value, str) else 0
    return total


def message_tokens(message: dict[str, Any], enc: tiktoken.Encoding) -> int:
    """One chat message: its overhead, role, name, content and any tool calls it carries."""
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            total += _content_tokens(value, enc)
        elif key in ("tool_calls", "function_call"):
            total += sum(len(enc.encode(s, disallowed_special=())) for s in _strings(value))
        elif isinstance(value, str):
            total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _strip_period(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def tool_definition_tokens(tools: Iterable[Any], enc: tiktoken.Encoding) -> int:
    """Tool (or legacy function) definitions, by the cookbook's gpt-4o formula."""
    total = 0
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function", tool)
        if not isinstance(function, dict):
            continue
        total += _FUNC_INIT
        line = f"{function.get('name', '')}:{_strip_period(str(function.get('description', '')))}"
        total += len(enc.encode(line, disallowed_special=()))
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and properties:
            total += _PROP_INIT
            for key, prop in properties.items():
                prop = prop if isinstance(prop, dict) else {}
                total += _PROP_KEY
                enum = prop.get("enum")
                if isinstance(enum, list):
                    total += _ENUM_INIT
                    for item in enum:
                        total += _ENUM_ITEM + len(enc.encode(str(item), disallowed_special=()))
                description = _strip_period(str(prop.get("description", "")))
                line = f"{key}:{prop.get('type', '')}:{description}"
                total += len(enc.encode(line, disallowed_special=()))
    return total + _FUNC_END if total else 0


def chat_prompt_tokens(messages: Iterable[Any], tools: Iterable[Any] = (), model: str = "") -> int:
    """Prompt tokens of a chat request as OpenAI reports them in ``usage.prompt_tokens``."""
    enc = encoding_for_model(model)
    total = REPLY_PRIMING
    for message in messages:
        if isinstance(message, dict):
            total += message_tokens(message, enc)
    return total + tool_definition_tokens(tools, enc)


def _input_tokens(value: Any, enc: tiktoken.Encoding) -> int:
    """A completions prompt / embeddings input: strings, or token arrays counted as given."""
    if isinstance(value, str):
        return len(enc.encode(value, disallowed_special=()))
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(_input_tokens(v, enc) for v in value)
    return 0


def prompt_tokens(endpoint: str, body: bytes, model: str = "") -> int | None:
    """Prompt tokens of a JSON request to ``endpoint``, or None when the body is not a JSON
    request this module knows how to count."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict):
        return None
    return request_prompt_tokens(endpoint, request, model)


def request_prompt_tokens(endpoint: str, request: dict[str, Any], model: str = "") -> int | None:
    """:func:`prompt_tokens` of a request already parsed."""
    model = model or str(request.get("model") or "")
    enc = encoding_for_model(model)
    if endpoint == "chat.completions":
        tools = request.get("tools") or request.get("functions") or ()
        return chat_prompt_tokens(request.get("messages") or (), tools, model)
    if endpoint == "completions":
        return _input_tokens(request.get("prompt"), enc)
    if endpoint in ("embeddings", "moderations"):
        return _input_tokens(request.get("input"), enc)
    if endpoint == "responses":
        items = request.get("input")
        messages = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
        if isinstance(request.get("instructions"), str):
            messages = [{"role": "developer", "content": request["instructions"]}, *messages]
        return chat_prompt_tokens(messages, request.get("tools") or (), model)
    if endpoint in ("messages", "messages.count_tokens"):  # Anthropic Messages: an estimate
        system = request.get("system")
        turns = [m for m in request.get("messages") or () if isinstance(m, dict)]
        if system:
            turns = [{"role": "system", "content": system}, *turns]
        tools = sum(
            len(enc.encode(s, disallowed_special=())) for s in _strings(request.get("tools"))
        )
        return chat_prompt_tokens(turns, (), model) + tools
    if gemini.is_gemini(endpoint):
        return _gemini_prompt_tokens(endpoint, request, enc, model)
    return None


# Gemini bills an image (or a PDF page, a second of video) as 258 tokens; unigate never fetches
# a file to count it, so each media part is taken at that price.
_GEMINI_MEDIA_TOKENS = 258


def _gemini_parts_tokens(content: Any, enc: tiktoken.Encoding) -> int:
    """A Gemini ``Content``'s parts: text, function calls/responses as their strings, media."""
    parts = content.get("parts") if isinstance(content, dict) else None
    total = 0
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if "inlineData" in part or "fileData" in part:
            total += _GEMINI_MEDIA_TOKENS
        for name in ("text", "functionCall", "functionResponse", "executableCode"):
            total += sum(
                len(enc.encode(s, disallowed_special=())) for s in _strings(part.get(name))
            )
    return total


def _gemini_prompt_tokens(
    endpoint: str, request: dict[str, Any], enc: tiktoken.Encoding, model: str
) -> int:
    """A Gemini-native request (``generateContent``/``countTokens``: the conversation, system
    instruction and tools, counted as OpenAI counts messages; the embedding methods: their
    texts). An estimate: the provider's own usage replaces it wherever it reports one."""
    if endpoint == gemini.EMBED:
        return _gemini_parts_tokens(request.get("content"), enc)
    if endpoint == gemini.BATCH_EMBED:
        items = request.get("requests")
        return sum(
            _gemini_parts_tokens(item.get("content"), enc)
            for item in (items if isinstance(items, list) else ())
            if isinstance(item, dict)
        )
    inner = request.get("generateContentRequest")
    if endpoint == gemini.COUNT_TOKENS and isinstance(inner, dict):
        request = inner
    contents = request.get("contents")
    turns = [contents] if isinstance(contents, dict) else contents
    total = REPLY_PRIMING
    for content in [request.get("systemInstruction"), *(turns if isinstance(turns, list) else ())]:
        if isinstance(content, dict):
            total += TOKENS_PER_MESSAGE + _gemini_parts_tokens(content, enc)
    tools = request.get("tools")
    if tools:
        total += sum(len(enc.encode(s, disallowed_special=())) for s in _strings(tools))
    return total
