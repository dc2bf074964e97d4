"""A strict, deterministic simulator of the OpenAI HTTP API.

Tests and local development use it in place of the real provider. It validates requests
the way OpenAI does (same status codes, same ``{"error": {message, type, param, code}}``
bodies) and answers immediately — there are no sleeps, so it also serves load tests — with
predictable content:

* a chat completion answers ``"Echo: " + <text of the last user message>`` (or of the tool
  results, when the conversation ends with them); with ``tools`` and a user message that
  mentions the weather it calls the first tool instead;
* usage comes from :func:`count_tokens` and :func:`count_prompt_tokens`, so tests can
  predict it exactly;
* an embedding is a unit vector derived from a hash of the model and the input.

:func:`create_app` returns a Starlette app whose ``state`` carries two lists that tests
inspect and steer:

* ``calls`` — one dict per authenticated request to a known endpoint, in arrival order:
  ``{"method", "path", "model", "stream", "body", "status"}`` (``body`` is the parsed JSON,
  or None; ``status`` is the HTTP status the simulator answered with);
* ``fail_next`` — ``(status, error_body)`` pairs; each authenticated request pops the first
  one, if any, and is answered with it instead of being served (fault injection).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import string
import struct
import sys
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "DEFAULT_MODELS",
    "IMAGE_PART_TOKENS",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "OpenAIError",
    "count_prompt_tokens",
    "count_tokens",
    "create_app",
    "embedding_vector",
    "mask_api_key",
    "message_text",
    "token_pieces",
]

JSONObject = dict[str, Any]

DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the simulator knows about a model: its listing metadata and its limits."""

    created: int
    owned_by: str
    context_window: int
    max_output_tokens: int = 0
    #: Native vector size; 0 marks a chat model.
    embedding_dimensions: int = 0
    #: Whether the ``dimensions`` parameter may shorten the vectors (text-embedding-3-*).
    supports_dimensions: bool = False

    @property
    def is_embedding(self) -> bool:
        """True for embedding models, which the chat endpoint refuses and vice versa."""
        return self.embedding_dimensions > 0


_KNOWN_MODELS: Final[dict[str, ModelSpec]] = {
    "gpt-4o-mini": ModelSpec(1721172741, "system", 128_000, 16_384),
    "gpt-4o": ModelSpec(1715367049, "system", 128_000, 16_384),
    "gpt-3.5-turbo": ModelSpec(1677610602, "openai", 16_385, 4_096),
    "text-embedding-3-small": ModelSpec(1705948997, "system", 8_192, 0, 1536, True),
    "text-embedding-3-large": ModelSpec(1705953180, "system", 8_192, 0, 3072, True),
    "text-embedding-ada-002": ModelSpec(1671217299, "openai-internal", 8_192, 0, 1536),
}


def model_spec(model_id: str) -> ModelSpec:
    """The spec of a model; ids the simulator does not know get generous defaults.

    Custom ids (``create_app(models=[...])``) are chat models unless they are named like
    OpenAI's embedding models (``text-embedding-*``).
    """
    known = _KNOWN_MODELS.get(model_id)
    if known is not None:
        return known
    if model_id.startswith("text-embedding-"):
        return ModelSpec(
            created=1_700_000_000,
            owned_by="system",
            context_window=8_192,
            embedding_dimensions=1536,
            supports_dimensions=model_id.startswith("text-embedding-3"),
        )
    return ModelSpec(1_700_000_000, "system", 128_000, 16_384)


# --------------------------------------------------------------------------- errors


class OpenAIError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> JSONObject:
        """The JSON body OpenAI would send for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _describe(value: Any) -> str:
    """How OpenAI names a JSON value's type in "but got ... instead" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _quoted_list(values: Sequence[str]) -> str:
    """``'a', 'b', and 'c'`` — the way OpenAI lists supported values."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    return _bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {_describe(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> OpenAIError:
    return _bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _invalid_value(param: str, value: str, supported: Sequence[str]) -> OpenAIError:
    return _bad_request(
        f"Invalid value: '{value}'. Supported values are: {_quoted_list(supported)}.",
        param,
        "invalid_value",
    )


def _unknown_parameter(param: str) -> OpenAIError:
    return _bad_request(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def _empty_array(param: str) -> OpenAIError:
    return _bad_request(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param,
        "empty_array",
    )


def _array_too_long(param: str, maximum: int, length: int) -> OpenAIError:
    return _bad_request(
        f"Invalid '{param}': array too long. Expected an array with maximum length "
        f"{maximum}, but got an array with length {length} instead.",
        param,
        "array_above_max_length",
    )


def _out_of_range(
    param: str, kind: str, value: float, minimum: float | None, maximum: float | None
) -> OpenAIError | None:
    """The range error for ``value``, or None when it is within [minimum, maximum]."""
    if minimum is not None and value < minimum:
        return _bad_request(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param,
            f"{kind}_below_min_value",
        )
    if maximum is not None and value > maximum:
        return _bad_request(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param,
            f"{kind}_above_max_value",
        )
    return None


# --------------------------------------------------------------------------- value checks
# Each returns the value with a precise type or raises the error OpenAI gives for it.


def _as_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid_type(param, "a boolean", value)
    return value


def _as_int(value: Any, param: str, minimum: int | None = None, maximum: int | None = None) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(param, "an integer", value)
    error = _out_of_range(param, "integer", value, minimum, maximum)
    if error is not None:
        raise error
    return value


def _as_number(value: Any, param: str, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_type(param, "a decimal", value)
    error = _out_of_range(param, "decimal", value, minimum, maximum)
    if error is not None:
        raise error
    return float(value)


def _as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid_type(param, "a string", value)
    return value


def _as_object(value: Any, param: str) -> JSONObject:
    if not isinstance(value, dict):
        raise _invalid_type(param, "an object", value)
    return value


def _as_array(
    value: Any, param: str, *, min_items: int = 0, max_items: int | None = None
) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid_type(param, "an array", value)
    if min_items and not value:
        raise _empty_array(param)
    if max_items is not None and len(value) > max_items:
        raise _array_too_long(param, max_items, len(value))
    return value


def _as_enum(value: Any, param: str, allowed: Sequence[str]) -> str:
    text = _as_str(value, param)
    if text not in allowed:
        raise _invalid_value(param, text, allowed)
    return text


def _reject_unknown(obj: JSONObject, allowed: Iterable[str], path: str) -> None:
    """Nested objects reject unknown keys with ``unknown_parameter`` and the key's path."""
    allowed_keys = set(allowed)
    for key in obj:
        if key not in allowed_keys:
            raise _unknown_parameter(f"{path}.{key}")


def _reject_unrecognized(obj: JSONObject, allowed: frozenset[str]) -> None:
    """Top-level unknown arguments get OpenAI's older, param-less message."""
    for key in obj:
        if key not in allowed:
            raise _bad_request(f"Unrecognized request argument supplied: {key}")


# --------------------------------------------------------------------------- tokens

_CJK: Final = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
)
# A token is one CJK character, a run of other word characters, or one symbol.
_TOKEN_RE: Final = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])\w)+|[^\w\s]")

#: Overhead of every message in the prompt, as in OpenAI's own accounting.
TOKENS_PER_MESSAGE: Final = 3
#: Every reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING_TOKENS: Final = 3
#: Flat cost of an image part (what a low-detail image costs on gpt-4o).
IMAGE_PART_TOKENS: Final = 85


def count_tokens(text: str) -> int:
    """Count tokens with the simulator's tokenizer.

    Deterministic and simple on purpose, so tests can predict usage: every run of word
    characters is one token, as is every punctuation character or symbol and every CJK
    character; whitespace is free. ``count_tokens("Hello, world!") == 4``.
    """
    return len(_TOKEN_RE.findall(text))


def token_pieces(text: str) -> list[str]:
    """Split ``text`` into one piece per token, each with the whitespace before it.

    The pieces join back to ``text`` exactly (trailing whitespace rides on the last piece);
    streams send one piece per chunk, like OpenAI sends one token per chunk.
    """
    ends = [match.end() for match in _TOKEN_RE.finditer(text)]
    if not ends:
        return [text] if text else []
    pieces = [text[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    pieces[-1] += text[ends[-1] :]
    return pieces


def _truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The first ``limit`` tokens of ``text``, and whether anything was cut off."""
    ends = [match.end() for match in _TOKEN_RE.finditer(text)]
    if len(ends) <= limit:
        return text, False
    return text[: ends[limit - 1]], True


def message_text(message: JSONObject) -> str:
    """The text of a message's content: the string, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            value = part.get(part["type"])
            if isinstance(value, str):
                texts.append(value)
    return " ".join(texts)


def _call_tokens(function: Any) -> int:
    """Tokens of a function call (name and arguments) carried by a message or reply."""
    if not isinstance(function, dict):
        return 0
    name, arguments = function.get("name"), function.get("arguments")
    return count_tokens(name if isinstance(name, str) else "") + count_tokens(
        arguments if isinstance(arguments, str) else ""
    )


def _image_parts(message: JSONObject) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def count_prompt_tokens(messages: Iterable[JSONObject]) -> int:
    """Prompt tokens of a chat request, as reported in ``usage.prompt_tokens``.

    ``REPLY_PRIMING_TOKENS`` plus, per message, ``TOKENS_PER_MESSAGE`` +
    ``count_tokens(message_text(m))`` + ``IMAGE_PART_TOKENS`` per image part + the tokens
    of any tool/function calls it carries (name and arguments). Tool definitions are free.
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(message_text(message))
        total += IMAGE_PART_TOKENS * _image_parts(message)
        for call in message.get("tool_calls") or ():
            total += _call_tokens(call.get("function"))
        total += _call_tokens(message.get("function_call"))
    return total


# --------------------------------------------------------------------------- request bodies

_PARSE_ERROR_MESSAGE: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)


@dataclass(frozen=True, slots=True)
class _Body:
    """A request body as received: its parsed JSON (None when absent or invalid)."""

    value: Any
    parsed: bool
    json_content_type: bool


async def _read_body(request: Request) -> _Body:
    content_type = request.headers.get("content-type", "")
    is_json = content_type.split(";", 1)[0].strip().lower() == "application/json"
    raw = await request.body()
    if not raw:
        return _Body(None, False, is_json)
    try:
        return _Body(orjson.loads(raw), True, is_json)
    except orjson.JSONDecodeError:
        return _Body(None, False, is_json)


def _json_payload(body: _Body) -> JSONObject:
    """The body as a JSON object, or OpenAI's parse error (also for non-JSON content)."""
    if not body.parsed or not body.json_content_type or not isinstance(body.value, dict):
        raise _bad_request(_PARSE_ERROR_MESSAGE)
    return body.value


def _require_model(obj: JSONObject) -> str:
    model = obj.get("model")
    if model is None or model == "":
        raise _bad_request("you must provide a model parameter")
    return _as_str(model, "model")


def _resolve_model(model: str, models: Sequence[str]) -> ModelSpec:
    if model not in models:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    return model_spec(model)


# --------------------------------------------------------------------------- chat: messages

_ROLES: Final = ("system", "assistant", "user", "function", "tool", "developer")
_MESSAGE_FIELDS: Final[dict[str, frozenset[str]]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    # "annotations" is not documented as input, but OpenAI accepts it: SDK users append the
    # assistant message they were answered (which carries it) to their next request.
    "assistant": frozenset(
        {
            "role",
            "content",
            "name",
            "tool_calls",
            "function_call",
            "refusal",
            "audio",
            "annotations",
        }
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
# Content part types each role may use.
_PART_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}


def _validate_part(part: Any, path: str, allowed: Sequence[str]) -> None:
    obj = _as_object(part, path)
    if "type" not in obj:
        raise _missing(f"{path}.type")
    kind = _as_enum(obj["type"], f"{path}.type", allowed)
    if kind == "refusal":
        _reject_unknown(obj, ("type", kind), path)
    else:
        _reject_unknown(obj, ("type", kind, "prompt_cache_breakpoint"), path)
        if obj.get("prompt_cache_breakpoint") is not None:
            _as_object(obj["prompt_cache_breakpoint"], f"{path}.prompt_cache_breakpoint")
    if kind not in obj:
        raise _missing(f"{path}.{kind}")
    payload = obj[kind]
    if kind in ("text", "refusal"):
        _as_str(payload, f"{path}.{kind}")
    elif kind == "image_url":
        image = _as_object(payload, f"{path}.image_url")
        _reject_unknown(image, ("url", "detail"), f"{path}.image_url")
        if "url" not in image:
            raise _missing(f"{path}.image_url.url")
        _as_str(image["url"], f"{path}.image_url.url")
        if image.get("detail") is not None:
            _as_enum(image["detail"], f"{path}.image_url.detail", ("auto", "low", "high"))
    elif kind == "input_audio":
        audio = _as_object(payload, f"{path}.input_audio")
        _reject_unknown(audio, ("data", "format"), f"{path}.input_audio")
        for key in ("data", "format"):
            if key not in audio:
                raise _missing(f"{path}.input_audio.{key}")
        _as_str(audio["data"], f"{path}.input_audio.data")
        _as_enum(audio["format"], f"{path}.input_audio.format", ("wav", "mp3"))
    else:
        file = _as_object(payload, f"{path}.file")
        _reject_unknown(file, ("file_data", "file_id", "filename"), f"{path}.file")


def _validate_content(message: JSONObject, path: str, role: str) -> None:
    if "content" not in message:
        raise _missing(f"{path}.content")
    content = message["content"]
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(f"{path}.content", "one of a string or array of objects", content)
    if not content:
        raise _empty_array(f"{path}.content")
    for index, part in enumerate(content):
        _validate_part(part, f"{path}.content[{index}]", _PART_TYPES[role])


def _validate_function_call(value: Any, path: str) -> None:
    """A ``{name, arguments}`` object, as in tool calls and legacy function calls."""
    obj = _as_object(value, path)
    _reject_unknown(obj, ("name", "arguments"), path)
    for key in ("name", "arguments"):
        if key not in obj:
            raise _missing(f"{path}.{key}")
        _as_str(obj[key], f"{path}.{key}")


def _validate_tool_calls(value: Any, path: str) -> None:
    calls = _as_array(value, path, min_items=1)
    for index, call in enumerate(calls):
        call_path = f"{path}[{index}]"
        obj = _as_object(call, call_path)
        _reject_unknown(obj, ("id", "type", "function"), call_path)
        for key in ("id", "type", "function"):
            if key not in obj:
                raise _missing(f"{call_path}.{key}")
        _as_str(obj["id"], f"{call_path}.id")
        _as_enum(obj["type"], f"{call_path}.type", ("function",))
        _validate_function_call(obj["function"], f"{call_path}.function")


def _validate_assistant(index: int, message: JSONObject) -> None:
    path = f"messages[{index}]"
    if message.get("tool_calls") is not None:
        _validate_tool_calls(message["tool_calls"], f"{path}.tool_calls")
    if message.get("function_call") is not None:
        _validate_function_call(message["function_call"], f"{path}.function_call")
    if message.get("refusal") is not None:
        _as_str(message["refusal"], f"{path}.refusal")
    if message.get("annotations") is not None:
        _as_array(message["annotations"], f"{path}.annotations")
    if message.get("content") is not None:
        _validate_content(message, path, "assistant")
        return
    # Content may only be absent when something else carries the assistant's turn.
    if not any(message.get(key) is not None for key in ("tool_calls", "function_call", "audio")):
        # OpenAI's older validator: note the "messages.[i]" spelling of the param.
        raise _bad_request(
            "Invalid value for 'content': expected a string, got null.",
            f"messages.[{index}].content",
        )


def _validate_message(index: int, message: Any) -> None:
    path = f"messages[{index}]"
    obj = _as_object(message, path)
    if "role" not in obj:
        raise _missing(f"{path}.role")
    role = _as_enum(obj["role"], f"{path}.role", _ROLES)
    _reject_unknown(obj, _MESSAGE_FIELDS[role], path)
    if obj.get("name") is not None:
        _as_str(obj["name"], f"{path}.name")
    if role == "assistant":
        _validate_assistant(index, obj)
    elif role == "function":
        if obj.get("name") is None:
            raise _missing(f"{path}.name")
        if obj.get("content") is not None:
            _as_str(obj["content"], f"{path}.content")
    else:
        _validate_content(obj, path, role)
    if role == "tool":
        if obj.get("tool_call_id") is None:
            raise _bad_request(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                "'tool_call_id'.",
                f"messages.[{index}].tool_call_id",
            )
        _as_str(obj["tool_call_id"], f"{path}.tool_call_id")


def _unanswered_calls_error(index: int, pending: Sequence[str]) -> OpenAIError:
    return _bad_request(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{index}].role",
    )


def _validate_tool_sequence(messages: Sequence[JSONObject]) -> None:
    """Tool results must answer, in full, the tool calls of the assistant turn before them."""
    calls: list[str] = []  # ids called by the latest assistant turn with tool_calls
    pending: list[str] = []  # those still waiting for a tool message
    caller = -1  # index of that assistant turn; -1 when tool messages are not allowed
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            if caller < 0:
                raise _bad_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            call_id = message["tool_call_id"]
            if call_id not in calls:
                raise _bad_request(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            if call_id in pending:
                pending.remove(call_id)
            continue
        if pending:
            raise _unanswered_calls_error(caller, pending)
        tool_calls = message.get("tool_calls") if message["role"] == "assistant" else None
        calls = [call["id"] for call in tool_calls] if tool_calls else []
        pending = list(calls)
        caller = index if calls else -1
    if pending:
        raise _unanswered_calls_error(caller, pending)


def _validate_messages(value: Any) -> list[JSONObject]:
    messages = _as_array(value, "messages", min_items=1)
    for index, message in enumerate(messages):
        _validate_message(index, message)
    _validate_tool_sequence(messages)
    return messages


# --------------------------------------------------------------------------- chat: parameters

_CHAT_PARAMETERS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        # Newer documented arguments, accepted so current SDKs are not refused.
        "verbosity",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "moderation",
    }
)
_FUNCTION_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_N: Final = 128
_MAX_STOP: Final = 4
_MAX_TOOLS: Final = 128


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request: what the reply depends on."""

    model: str
    messages: list[JSONObject]
    prompt_tokens: int
    stream: bool
    include_usage: bool
    n: int
    max_tokens: int | None
    stop: tuple[str, ...]
    tools: list[JSONObject]  # the "function" objects of the tools
    tool_choice: str | JSONObject
    functions: list[JSONObject]  # legacy function definitions
    function_call: str | JSONObject
    response_format: JSONObject | None
    logprobs: bool
    top_logprobs: int
    service_tier: str


def _stream_flags(obj: JSONObject) -> tuple[bool, bool]:
    """``(stream, include_usage)``; stream_options is refused unless streaming."""
    stream = obj.get("stream") is not None and _as_bool(obj["stream"], "stream")
    options = obj.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise _bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    opts = _as_object(options, "stream_options")
    _reject_unknown(opts, ("include_usage", "include_obfuscation"), "stream_options")
    if opts.get("include_obfuscation") is not None:
        _as_bool(opts["include_obfuscation"], "stream_options.include_obfuscation")
    include = opts.get("include_usage")
    return stream, include is not None and _as_bool(include, "stream_options.include_usage")


def _max_tokens(obj: JSONObject, spec: ModelSpec) -> int | None:
    """The completion token limit; ``max_completion_tokens`` wins over ``max_tokens``."""
    limit: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        if obj.get(name) is None:
            continue
        limit = _as_int(obj[name], name, minimum=1)
        if limit > spec.max_output_tokens:
            raise _bad_request(
                f"{name} is too large: {limit}. This model supports at most "
                f"{spec.max_output_tokens} completion tokens, whereas you provided {limit}.",
                name,
                "invalid_value",
            )
    return limit


def _stop(obj: JSONObject) -> tuple[str, ...]:
    value = obj.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise _invalid_type("stop", "one of a string or array of strings", value)
    _as_array(value, "stop", max_items=_MAX_STOP)
    return tuple(_as_str(item, f"stop[{index}]") for index, item in enumerate(value))


def _validate_sampling(obj: JSONObject) -> None:
    """Parameters that do not change the simulated reply but must still be well formed."""
    ranges = {
        "temperature": (0.0, 2.0),
        "top_p": (0.0, 1.0),
        "presence_penalty": (-2.0, 2.0),
        "frequency_penalty": (-2.0, 2.0),
    }
    for name, (low, high) in ranges.items():
        if obj.get(name) is not None:
            _as_number(obj[name], name, low, high)
    if obj.get("logit_bias") is not None:
        for token, bias in _as_object(obj["logit_bias"], "logit_bias").items():
            _as_number(bias, f"logit_bias.{token}", -100.0, 100.0)
    if obj.get("seed") is not None:
        _as_int(obj["seed"], "seed")
    for name in ("user", "prompt_cache_key", "safety_identifier"):
        if obj.get(name) is not None:
            _as_str(obj[name], name)
    if obj.get("store") is not None:
        _as_bool(obj["store"], "store")
    if obj.get("metadata") is not None:
        metadata = _as_object(obj["metadata"], "metadata")
        for key, value in metadata.items():
            _as_str(value, f"metadata.{key}")
    enums = {
        "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "verbosity": ("low", "medium", "high"),
        "prompt_cache_retention": ("in_memory", "24h"),
    }
    for name, allowed in enums.items():
        if obj.get(name) is not None:
            _as_enum(obj[name], name, allowed)
    if obj.get("modalities") is not None:
        for index, item in enumerate(_as_array(obj["modalities"], "modalities")):
            _as_enum(item, f"modalities[{index}]", ("text", "audio"))
    for name in ("audio", "prediction", "web_search_options", "moderation", "prompt_cache_options"):
        if obj.get(name) is not None:
            _as_object(obj[name], name)


def _logprobs(obj: JSONObject) -> tuple[bool, int]:
    logprobs = obj.get("logprobs") is not None and _as_bool(obj["logprobs"], "logprobs")
    if obj.get("top_logprobs") is None:
        return logprobs, 0
    top = _as_int(obj["top_logprobs"], "top_logprobs", 0, 20)
    if not logprobs:
        raise _bad_request(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is specified.",
            "top_logprobs",
        )
    return logprobs, top


def _function_definition(value: Any, path: str) -> JSONObject:
    """A function definition, as in ``tools[i].function`` and legacy ``functions[i]``."""
    function = _as_object(value, path)
    _reject_unknown(function, ("name", "description", "parameters", "strict"), path)
    if "name" not in function:
        raise _missing(f"{path}.name")
    name = _as_str(function["name"], f"{path}.name")
    if not _FUNCTION_NAME_RE.match(name):
        raise _bad_request(
            f"Invalid '{path}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{path}.name",
            "invalid_value",
        )
    if function.get("description") is not None:
        _as_str(function["description"], f"{path}.description")
    if function.get("parameters") is not None:
        _as_object(function["parameters"], f"{path}.parameters")
    if function.get("strict") is not None:
        _as_bool(function["strict"], f"{path}.strict")
    return function


def _check_named(name: Any, param: str, name_param: str, names: Sequence[str]) -> None:
    """A function named by ``tool_choice``/``function_call`` must be among those offered."""
    if name is None:
        raise _missing(name_param)
    if _as_str(name, name_param) not in names:
        offered = "tools" if param == "tool_choice" else "functions"
        raise _bad_request(
            f"Invalid value for '{param}': function '{name}' not found in the provided {offered}.",
            param,
        )


def _tool_choice(value: Any, names: Sequence[str]) -> str | JSONObject:
    """``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function", "function": {name}}``."""
    if isinstance(value, str):
        return _as_enum(value, "tool_choice", ("none", "auto", "required"))
    choice = _as_object(value, "tool_choice")
    _reject_unknown(choice, ("type", "function"), "tool_choice")
    for key in ("type", "function"):
        if key not in choice:
            raise _missing(f"tool_choice.{key}")
    _as_enum(choice["type"], "tool_choice.type", ("function",))
    function = _as_object(choice["function"], "tool_choice.function")
    _reject_unknown(function, ("name",), "tool_choice.function")
    _check_named(function.get("name"), "tool_choice", "tool_choice.function.name", names)
    return choice


def _function_call_choice(value: Any, names: Sequence[str]) -> str | JSONObject:
    """The legacy ``function_call``: ``"none"``, ``"auto"`` or ``{"name": ...}``."""
    if isinstance(value, str):
        return _as_enum(value, "function_call", ("none", "auto"))
    choice = _as_object(value, "function_call")
    _reject_unknown(choice, ("name",), "function_call")
    _check_named(choice.get("name"), "function_call", "function_call.name", names)
    return choice


def _tools(obj: JSONObject) -> tuple[list[JSONObject], str | JSONObject]:
    """The tools' function definitions and the tool choice ("auto" by default)."""
    if obj.get("tools") is None:
        for name in ("tool_choice", "parallel_tool_calls"):
            if obj.get(name) is not None:
                raise _bad_request(
                    f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are "
                    "specified.",
                    name,
                )
        return [], "none"
    tools = _as_array(obj["tools"], "tools", min_items=1, max_items=_MAX_TOOLS)
    functions: list[JSONObject] = []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        definition = _as_object(tool, path)
        _reject_unknown(definition, ("type", "function"), path)
        for key in ("type", "function"):
            if key not in definition:
                raise _missing(f"{path}.{key}")
        _as_enum(definition["type"], f"{path}.type", ("function",))
        functions.append(_function_definition(definition["function"], f"{path}.function"))
    if obj.get("parallel_tool_calls") is not None:
        _as_bool(obj["parallel_tool_calls"], "parallel_tool_calls")
    if obj.get("tool_choice") is None:
        return functions, "auto"
    return functions, _tool_choice(obj["tool_choice"], [f["name"] for f in functions])


def _legacy_functions(obj: JSONObject) -> tuple[list[JSONObject], str | JSONObject]:
    """The deprecated ``functions``/``function_call`` pair, still accepted by OpenAI."""
    if obj.get("functions") is None:
        if obj.get("function_call") is not None:
            raise _bad_request(
                "Invalid value for 'function_call': 'function_call' is only allowed when "
                "'functions' are specified.",
                "function_call",
            )
        return [], "none"
    items = _as_array(obj["functions"], "functions", min_items=1, max_items=_MAX_TOOLS)
    functions = [
        _function_definition(item, f"functions[{index}]") for index, item in enumerate(items)
    ]
    if obj.get("function_call") is None:
        return functions, "auto"
    return functions, _function_call_choice(obj["function_call"], [f["name"] for f in functions])


def _response_format(obj: JSONObject, messages: Sequence[JSONObject]) -> JSONObject | None:
    if obj.get("response_format") is None:
        return None
    fmt = _as_object(obj["response_format"], "response_format")
    if "type" not in fmt:
        raise _missing("response_format.type")
    kind = _as_enum(fmt["type"], "response_format.type", ("text", "json_object", "json_schema"))
    _reject_unknown(
        fmt, ("type", "json_schema") if kind == "json_schema" else ("type",), "response_format"
    )
    if kind == "json_schema":
        if "json_schema" not in fmt:
            raise _missing("response_format.json_schema")
        schema = _as_object(fmt["json_schema"], "response_format.json_schema")
        path = "response_format.json_schema"
        _reject_unknown(schema, ("name", "description", "schema", "strict"), path)
        if "name" not in schema:
            raise _missing(f"{path}.name")
        _as_str(schema["name"], f"{path}.name")
        if schema.get("schema") is not None:
            _as_object(schema["schema"], f"{path}.schema")
    if kind == "json_object" and not any(
        "json" in message_text(message).lower() for message in messages
    ):
        raise _bad_request(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
            "messages",
        )
    return fmt


def _check_context(spec: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> None:
    window = spec.context_window
    if prompt_tokens > window:
        raise _bad_request(
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            "messages",
            "context_length_exceeded",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > window:
        raise _bad_request(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion.",
            "messages",
            "context_length_exceeded",
        )


def parse_chat_request(payload: JSONObject, models: Sequence[str]) -> ChatRequest:
    """Validate a ``POST /v1/chat/completions`` body as OpenAI does, in OpenAI's order."""
    model = _require_model(payload)
    _reject_unrecognized(payload, _CHAT_PARAMETERS)
    spec = _resolve_model(model, models)
    if spec.is_embedding:
        raise OpenAIError(
            404,
            "This is not a chat model and thus not supported in the v1/chat/completions "
            "endpoint. Did you mean to use v1/completions?",
            param="model",
        )
    if "messages" not in payload:
        raise _missing("messages")
    messages = _validate_messages(payload["messages"])
    stream, include_usage = _stream_flags(payload)
    n = 1 if payload.get("n") is None else _as_int(payload["n"], "n", 1, _MAX_N)
    max_tokens = _max_tokens(payload, spec)
    stop = _stop(payload)
    _validate_sampling(payload)
    logprobs, top_logprobs = _logprobs(payload)
    tools, tool_choice = _tools(payload)
    functions, function_call = _legacy_functions(payload)
    response_format = _response_format(payload, messages)
    tiers = ("auto", "default", "flex", "scale", "priority", "fast")
    tier = payload.get("service_tier")
    service_tier = "auto" if tier is None else _as_enum(tier, "service_tier", tiers)
    prompt_tokens = count_prompt_tokens(messages)
    _check_context(spec, prompt_tokens, max_tokens)
    return ChatRequest(
        model=model,
        messages=messages,
        prompt_tokens=prompt_tokens,
        stream=stream,
        include_usage=include_usage,
        n=n,
        max_tokens=max_tokens,
        stop=stop,
        tools=tools,
        tool_choice=tool_choice,
        functions=functions,
        function_call=function_call,
        response_format=response_format,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        # "auto" resolves to the default tier, and responses report the tier used.
        service_tier="default" if service_tier == "auto" else service_tier,
    )


# --------------------------------------------------------------------------- chat: the reply

_WEATHER_RE: Final = re.compile(r"\bweather\b", re.IGNORECASE)
_MAX_SCHEMA_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call the simulated model makes: a function name and its JSON arguments."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One choice's answer, before it is rendered as JSON or as stream chunks."""

    content: str | None = None
    tool_call: FunctionCall | None = None
    function_call: FunctionCall | None = None
    finish_reason: str = "stop"

    def completion_tokens(self) -> int:
        """Tokens of this answer: its content, or the called function's name and arguments."""
        call = self.tool_call or self.function_call
        if call is not None:
            return count_tokens(call.name) + count_tokens(call.arguments)
        return count_tokens(self.content or "")


def _example_object(schema: JSONObject, text: str, depth: int) -> JSONObject:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    return {
        name: _example_value(sub, text, depth + 1)
        for name, sub in properties.items()
        if not isinstance(required, list) or name in required
    }


def _example_value(schema: Any, text: str, depth: int = 0) -> Any:
    """A value matching a JSON schema, built from ``text``: how tool arguments are made up."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _example_value(options[0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return _example_object(schema, text, depth)
    if kind == "array":
        items = schema.get("items")
        return [] if items is None else [_example_value(items, text, depth + 1)]
    scalars: dict[str, Any] = {"integer": 1, "number": 1, "boolean": True, "null": None}
    return scalars.get(kind, text) if isinstance(kind, str) else text


def _make_call(function: JSONObject, text: str) -> FunctionCall:
    parameters = function.get("parameters")
    arguments = _example_value(parameters, text) if parameters is not None else {}
    return FunctionCall(function["name"], orjson.dumps(arguments).decode())


def _chosen_function(
    functions: Sequence[JSONObject], choice: str | JSONObject, forced: str, text: str
) -> JSONObject | None:
    """The function the simulated model calls, if any.

    It calls the named function when told to, the first one when ``choice`` is ``forced``
    ("required"), and otherwise the first one only when the user asks about the weather.
    """
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        named = choice.get("function", choice).get("name")
        return next(function for function in functions if function["name"] == named)
    if choice == forced or _WEATHER_RE.search(text):
        return functions[0]
    return None


def _last_user_text(messages: Sequence[JSONObject]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return message_text(message)
    return ""


def _shaped_content(response_format: JSONObject | None, echo: str) -> str:
    """The reply text in the requested format: plain, a JSON object, or schema-shaped JSON."""
    kind = response_format["type"] if response_format else "text"
    if kind == "json_object":
        return orjson.dumps({"content": echo}).decode()
    if kind == "json_schema":
        assert response_format is not None
        schema = response_format["json_schema"].get("schema")
        return orjson.dumps(_example_value(schema, echo) if schema else {}).decode()
    return echo


def _apply_stop(content: str, stops: Sequence[str]) -> str:
    """Cut the content before the first stop sequence it contains."""
    positions = [content.find(stop) for stop in stops if stop and stop in content]
    return content[: min(positions)] if positions else content


def plan_reply(request: ChatRequest) -> Reply:
    """Decide what the simulated model answers to a validated request."""
    last = request.messages[-1]
    # With tool results in, the model answers from them rather than calling again.
    if last["role"] in ("tool", "function"):
        text = message_text(last)
    else:
        text = _last_user_text(request.messages)
        tool = _chosen_function(request.tools, request.tool_choice, "required", text)
        if tool is not None:
            return Reply(tool_call=_make_call(tool, text), finish_reason="tool_calls")
        function = _chosen_function(request.functions, request.function_call, "", text)
        if function is not None:
            return Reply(function_call=_make_call(function, text), finish_reason="function_call")
    content = _apply_stop(_shaped_content(request.response_format, "Echo: " + text), request.stop)
    if request.max_tokens is not None:
        content, truncated = _truncate_tokens(content, request.max_tokens)
        if truncated:
            return Reply(content=content, finish_reason="length")
    return Reply(content=content)


# --------------------------------------------------------------------------- chat: rendering

_ALPHANUMERIC: Final = string.ascii_letters + string.digits
# Ids only need to be unique, not unguessable; a plain PRNG is much cheaper under load.
_id_random: Final = random.Random()


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(_id_random.choices(_ALPHANUMERIC, k=length))


@dataclass(frozen=True, slots=True)
class _Completion:
    """What every choice and chunk of one completion shares."""

    id: str
    created: int
    fingerprint: str

    @classmethod
    def new(cls, model: str) -> _Completion:
        fingerprint = "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]
        return cls(_random_id("chatcmpl-", 29), int(time.time()), fingerprint)


def _usage(prompt_tokens: int, completion_tokens: int) -> JSONObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _token_logprob(piece: str, top: int) -> JSONObject:
    """A logprobs entry: the simulated model is always certain of its token."""
    chosen = {"token": piece, "logprob": 0.0, "bytes": list(piece.encode())}
    alternatives = [
        {"token": f"<alt{rank}>", "logprob": -10.0 * rank, "bytes": list(f"<alt{rank}>".encode())}
        for rank in range(1, top)
    ]
    return {**chosen, "top_logprobs": [chosen, *alternatives][:top]}


def _logprobs_block(pieces: Sequence[str], top: int) -> JSONObject:
    return {"content": [_token_logprob(piece, top) for piece in pieces], "refusal": None}


def _call_json(call: FunctionCall) -> JSONObject:
    return {"name": call.name, "arguments": call.arguments}


def _render_choice(index: int, request: ChatRequest, reply: Reply) -> JSONObject:
    message: JSONObject = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_call is not None:
        message["tool_calls"] = [
            {
                "id": _random_id("call_", 24),
                "type": "function",
                "function": _call_json(reply.tool_call),
            }
        ]
    if reply.function_call is not None:
        message["function_call"] = _call_json(reply.function_call)
    logprobs = None
    if request.logprobs:
        pieces = token_pieces(reply.content) if reply.content is not None else []
        logprobs = _logprobs_block(pieces, request.top_logprobs)
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": reply.finish_reason,
    }


def render_completion(request: ChatRequest, reply: Reply, completion: _Completion) -> JSONObject:
    """The ``chat.completion`` object answered to a non-streaming request."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": request.model,
        "choices": [_render_choice(index, request, reply) for index in range(request.n)],
        "usage": _usage(request.prompt_tokens, reply.completion_tokens() * request.n),
        "service_tier": request.service_tier,
        "system_fingerprint": completion.fingerprint,
    }


# (delta, logprobs, finish_reason) of one chunk of one choice.
_Delta = tuple[JSONObject, JSONObject | None, str | None]


def _call_deltas(reply: Reply) -> list[_Delta]:
    """A tool or function call streamed like OpenAI: name first, then argument fragments."""
    if reply.tool_call is not None:
        call, key = reply.tool_call, "tool_calls"
        opening: Any = [
            {
                "index": 0,
                "id": _random_id("call_", 24),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        ]
    else:
        assert reply.function_call is not None
        call, key = reply.function_call, "function_call"
        opening = {"name": call.name, "arguments": ""}
    first: JSONObject = {"role": "assistant", "content": None, key: opening, "refusal": None}
    deltas: list[_Delta] = [(first, None, None)]
    for piece in token_pieces(call.arguments):
        fragment: Any = {"arguments": piece}
        if key == "tool_calls":
            fragment = [{"index": 0, "function": fragment}]
        deltas.append(({key: fragment}, None, None))
    return deltas


def _choice_deltas(request: ChatRequest, reply: Reply) -> list[_Delta]:
    if reply.tool_call is not None or reply.function_call is not None:
        deltas = _call_deltas(reply)
    else:
        top = request.top_logprobs
        first_logprobs: JSONObject | None = None
        if request.logprobs:
            first_logprobs = {"content": [], "refusal": None}
        deltas = [({"role": "assistant", "content": "", "refusal": None}, first_logprobs, None)]
        for piece in token_pieces(reply.content or ""):
            logprobs = _logprobs_block([piece], top) if request.logprobs else None
            deltas.append(({"content": piece}, logprobs, None))
    deltas.append(({}, None, reply.finish_reason))
    return deltas


def _sse(chunk: JSONObject) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def render_stream(request: ChatRequest, reply: Reply, completion: _Completion) -> list[bytes]:
    """The server-sent event frames answered to a streaming request, ``[DONE]`` included."""
    header: JSONObject = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": request.model,
        "service_tier": request.service_tier,
        "system_fingerprint": completion.fingerprint,
    }
    frames: list[bytes] = []
    for index in range(request.n):
        for delta, logprobs, finish_reason in _choice_deltas(request, reply):
            choice = {
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
            chunk: JSONObject = {**header, "choices": [choice]}
            if request.include_usage:
                chunk["usage"] = None
            frames.append(_sse(chunk))
    if request.include_usage:
        usage = _usage(request.prompt_tokens, reply.completion_tokens() * request.n)
        frames.append(_sse({**header, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return frames


async def _iterate(frames: Sequence[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


# --------------------------------------------------------------------------- embeddings

_EMBEDDING_PARAMETERS: Final = frozenset(
    {"model", "input", "encoding_format", "dimensions", "user"}
)
MAX_EMBEDDING_INPUTS: Final = 2048
_INVALID_INPUT_MESSAGE: Final = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)

EmbeddingInput = str | list[int]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A validated embeddings request."""

    model: str
    inputs: list[EmbeddingInput]
    dimensions: int
    base64: bool
    prompt_tokens: int


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _embedding_inputs(value: Any) -> list[EmbeddingInput]:
    """The inputs: a string, strings, one array of token ids, or arrays of token ids."""
    invalid = _bad_request(_INVALID_INPUT_MESSAGE)
    if isinstance(value, str):
        if not value:
            raise invalid
        return [value]
    if not isinstance(value, list) or not value:
        raise invalid
    if all(_is_token(item) for item in value):
        return [value]
    strings = all(isinstance(item, str) and item for item in value)
    token_arrays = all(
        isinstance(item, list) and item and all(_is_token(token) for token in item)
        for item in value
    )
    if not strings and not token_arrays:
        raise invalid
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise _array_too_long("input", MAX_EMBEDDING_INPUTS, len(value))
    return list(value)


def _input_tokens(item: EmbeddingInput) -> int:
    return count_tokens(item) if isinstance(item, str) else len(item)


def _embedding_dimensions(value: Any, spec: ModelSpec) -> int:
    if value is None:
        return spec.embedding_dimensions
    if not spec.supports_dimensions:
        raise _bad_request("This model does not support specifying dimensions.")
    return _as_int(value, "dimensions", 1, spec.embedding_dimensions)


def parse_embedding_request(payload: JSONObject, models: Sequence[str]) -> EmbeddingRequest:
    """Validate a ``POST /v1/embeddings`` body as OpenAI does."""
    model = _require_model(payload)
    _reject_unrecognized(payload, _EMBEDDING_PARAMETERS)
    spec = _resolve_model(model, models)
    if not spec.is_embedding:
        raise OpenAIError(403, "You are not allowed to generate embeddings from this model")
    if "input" not in payload:
        raise _missing("input")
    inputs = _embedding_inputs(payload["input"])
    fmt = payload.get("encoding_format")
    encoding = "float" if fmt is None else _as_enum(fmt, "encoding_format", ("float", "base64"))
    dimensions = _embedding_dimensions(payload.get("dimensions"), spec)
    if payload.get("user") is not None:
        _as_str(payload["user"], "user")
    tokens = [_input_tokens(item) for item in inputs]
    for count in tokens:
        if count > spec.context_window:
            raise _bad_request(
                f"This model's maximum context length is {spec.context_window} tokens, however "
                f"you requested {count} tokens ({count} in your prompt; 0 for the completion). "
                "Please reduce your prompt; or completion length."
            )
    return EmbeddingRequest(model, inputs, dimensions, encoding == "base64", sum(tokens))


def _float32_unit_vector(model: str, item: EmbeddingInput, dimensions: int) -> array[float]:
    key = "s:" + item if isinstance(item, str) else "t:" + ",".join(map(str, item))
    digest = hashlib.shake_256(f"{model}\x00{key}".encode()).digest(2 * dimensions)
    raw = struct.unpack(f"<{dimensions}h", digest)
    norm = math.hypot(*raw) or 1.0
    return array("f", [value / norm for value in raw])


def embedding_vector(model: str, item: EmbeddingInput, dimensions: int) -> list[float]:
    """The simulated embedding of ``item``: a deterministic unit vector.

    Components come from a SHAKE-256 stream of the model and the input, so the same input
    always embeds the same way, and — as with OpenAI's shortened embeddings — a vector with
    fewer ``dimensions`` is the full one cut short and renormalised. Values are rounded to
    float32, what OpenAI serves, so float and base64 answers decode to the same numbers.
    """
    return _float32_unit_vector(model, item, dimensions).tolist()


def _base64_embedding(model: str, item: EmbeddingInput, dimensions: int) -> str:
    """The embedding as little-endian float32 bytes, base64 encoded (``encoding_format``
    "base64", which the openai SDK asks for by default and decodes itself)."""
    vector = _float32_unit_vector(model, item, dimensions)
    if sys.byteorder == "big":
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode()


def render_embeddings(request: EmbeddingRequest) -> JSONObject:
    """The ``list`` object answered to an embeddings request."""
    data: list[JSONObject] = []
    for index, item in enumerate(request.inputs):
        encode = _base64_embedding if request.base64 else embedding_vector
        embedding = encode(request.model, item, request.dimensions)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = request.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --------------------------------------------------------------------------- HTTP layer

_MISSING_KEY_MESSAGE: Final = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def mask_api_key(key: str) -> str:
    """A key as OpenAI echoes it in errors: first 8 and last 4 characters, stars between.

    Keys of 12 characters or fewer are echoed as they are, as OpenAI does.
    """
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def _authenticate(request: Request, api_keys: frozenset[str]) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise OpenAIError(401, _MISSING_KEY_MESSAGE)
    if key not in api_keys:
        raise OpenAIError(
            401,
            f"Incorrect API key provided: {mask_api_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _headers() -> dict[str, str]:
    """Headers OpenAI puts on every answer; the SDK exposes x-request-id as ``_request_id``."""
    return {"x-request-id": _random_id("req_", 32), "openai-version": "2020-10-01"}


def _json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=_headers()
    )


def _error_response(error: OpenAIError) -> Response:
    return _json_response(error.body(), error.status)


def _call_record(request: Request, body: _Body) -> JSONObject:
    """What ``app.state.calls`` keeps of a request."""
    value = body.value if body.parsed else None
    model = value.get("model") if isinstance(value, dict) else request.path_params.get("model")
    stream = isinstance(value, dict) and value.get("stream") is True
    return {
        "method": request.method,
        "path": request.url.path,
        "model": model if isinstance(model, str) else None,
        "stream": stream,
        "body": value,
        "status": 0,
    }


def _injected_fault(request: Request) -> Response | None:
    queue: list[tuple[int, JSONObject]] = request.app.state.fail_next
    if not queue:
        return None
    status, body = queue.pop(0)
    return _json_response(body, status)


_Handler = Callable[[Request, _Body], Awaitable[Response]]


class _Simulator:
    """The endpoints, bound to the keys and models one app was created with."""

    def __init__(self, api_keys: frozenset[str], models: tuple[str, ...]) -> None:
        self.api_keys = api_keys
        self.models = models

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self._serve(self.chat_completions), methods=["POST"]),
            Route("/v1/embeddings", self._serve(self.embeddings), methods=["POST"]),
            Route("/v1/models", self._serve(self.list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", self._serve(self.retrieve_model), methods=["GET"]),
        ]

    def _serve(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap an endpoint with authentication, call recording and fault injection."""

        async def endpoint(request: Request) -> Response:
            try:
                _authenticate(request, self.api_keys)
            except OpenAIError as error:
                # Refused at the door: the provider never "saw" the request.
                return _error_response(error)
            body = await _read_body(request)
            record = _call_record(request, body)
            request.app.state.calls.append(record)
            response = _injected_fault(request)
            if response is None:
                try:
                    response = await handler(request, body)
                except OpenAIError as error:
                    response = _error_response(error)
            record["status"] = response.status_code
            return response

        return endpoint

    async def chat_completions(self, request: Request, body: _Body) -> Response:
        chat = parse_chat_request(_json_payload(body), self.models)
        reply = plan_reply(chat)
        completion = _Completion.new(chat.model)
        if chat.stream:
            frames = render_stream(chat, reply, completion)
            return StreamingResponse(
                _iterate(frames), media_type="text/event-stream", headers=_headers()
            )
        return _json_response(render_completion(chat, reply, completion))

    async def embeddings(self, request: Request, body: _Body) -> Response:
        embedding = parse_embedding_request(_json_payload(body), self.models)
        return _json_response(render_embeddings(embedding))

    async def list_models(self, request: Request, body: _Body) -> Response:
        return _json_response(
            {"object": "list", "data": [_model_object(model) for model in self.models]}
        )

    async def retrieve_model(self, request: Request, body: _Body) -> Response:
        model = request.path_params["model"]
        if model not in self.models:
            raise OpenAIError(
                404, f"The model '{model}' does not exist", param="model", code="model_not_found"
            )
        return _json_response(_model_object(model))


def _model_object(model: str) -> JSONObject:
    spec = model_spec(model)
    return {"id": model, "object": "model", "created": spec.created, "owned_by": spec.owned_by}


async def _invalid_url(request: Request, exc: Exception) -> Response:
    return _error_response(OpenAIError(404, f"Invalid URL ({request.method} {request.url.path})"))


async def _invalid_method(request: Request, exc: Exception) -> Response:
    return _error_response(
        OpenAIError(405, f"Invalid method for URL ({request.method} {request.url.path})")
    )


def create_app(api_keys: set[str], models: list[str] | None = None) -> Starlette:
    """An ASGI app simulating the OpenAI API for ``api_keys``, serving ``models``.

    ``models`` defaults to :data:`DEFAULT_MODELS`. The app's ``state.calls`` and
    ``state.fail_next`` lists are described in the module docstring.
    """
    simulator = _Simulator(
        frozenset(api_keys), tuple(models) if models is not None else DEFAULT_MODELS
    )
    app = Starlette(
        routes=simulator.routes(),
        exception_handlers={404: _invalid_url, 405: _invalid_method},
    )
    calls: list[JSONObject] = []
    fail_next: list[tuple[int, JSONObject]] = []
    app.state.calls = calls
    app.state.fail_next = fail_next
    return app
