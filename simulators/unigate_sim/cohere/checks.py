"""Validating Cohere v2 request bodies; a failure is a :class:`Refused` with Cohere's
status and message."""

from __future__ import annotations

import re
from typing import Any, Final

CHAT_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
    }
)
EMBED_FIELDS: Final = frozenset(
    {
        "model",
        "texts",
        "images",
        "inputs",
        "input_type",
        "embedding_types",
        "output_dimension",
        "max_tokens",
        "truncate",
        "priority",
    }
)
RERANK_FIELDS: Final = frozenset(
    {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}
)
INPUT_TYPES: Final = frozenset(
    {"search_document", "search_query", "classification", "clustering", "image"}
)
EMBEDDING_TYPES: Final = frozenset({"float", "int8", "uint8", "binary", "ubinary", "base64"})
_FUNCTION_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_STOP_SEQUENCES: Final = 5
MAX_TEXTS: Final = 96
MAX_DOCUMENTS: Final = 1000


class Refused(Exception):
    """A request Cohere would refuse."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def invalid(message: str) -> Refused:
    return Refused(400, f"invalid request: {message}")


def known_fields(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    for name in body:
        if name not in allowed:
            raise invalid(f"unknown field: parameter {name} is not a valid field")
    return body


def number(body: dict[str, Any], name: str, low: float, high: float | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(f"{name} must be {bound}, received {value}")


def integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(f"{name} must be an integer")
    number(body, name, low, high)


def _text_parts(content: Any, where: str, kinds: frozenset[str]) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise invalid(f"{where}.content must be a string or a non-empty array")
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise invalid(f"{where}.content[{index}].type must be one of {sorted(kinds)}")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise invalid(f"{where}.content[{index}].text must be a string")
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise invalid(f"{where}.content[{index}].image_url.url must be a string")
        elif kind == "document" and not isinstance(part.get("document"), dict):
            raise invalid(f"{where}.content[{index}].document must be an object")
    return " ".join(texts)


def messages(value: Any) -> list[dict[str, Any]]:
    """The messages, each with its plain ``text`` added; raises Refused."""
    if not isinstance(value, list) or not value:
        raise invalid("messages must be a non-empty array")
    out: list[dict[str, Any]] = []
    calls: set[str] = set()
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(f"{where} must be an object")
        role = message.get("role")
        if role == "system":
            known_fields(message, frozenset({"role", "content"}))
            text = _text_parts(message.get("content"), where, frozenset({"text"}))
        elif role == "user":
            known_fields(message, frozenset({"role", "content"}))
            kinds = frozenset({"text", "image_url", "document"})
            text = _text_parts(message.get("content"), where, kinds)
        elif role == "assistant":
            fields = frozenset({"role", "content", "tool_calls", "tool_plan", "citations"})
            known_fields(message, fields)
            tool_calls = message.get("tool_calls")
            if tool_calls is None and message.get("content") is None:
                raise invalid(f"{where} must have content or tool_calls")
            text = ""
            if message.get("content") is not None:
                text = _text_parts(message["content"], where, frozenset({"text"}))
            if tool_calls is not None:
                if not isinstance(tool_calls, list) or not tool_calls:
                    raise invalid(f"{where}.tool_calls must be a non-empty array")
                for n, call in enumerate(tool_calls):
                    function = call.get("function") if isinstance(call, dict) else None
                    if (
                        not isinstance(call.get("id"), str)
                        or not call["id"]
                        or call.get("type") != "function"
                        or not isinstance(function, dict)
                        or not isinstance(function.get("name"), str)
                        or not isinstance(function.get("arguments"), str)
                    ):
                        raise invalid(
                            f"{where}.tool_calls[{n}] must be {{id, type: function, "
                            "function: {name, arguments}}"
                        )
                    calls.add(call["id"])
            if message.get("tool_plan") is not None and not isinstance(message["tool_plan"], str):
                raise invalid(f"{where}.tool_plan must be a string")
        elif role == "tool":
            known_fields(message, frozenset({"role", "tool_call_id", "content"}))
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{where}.tool_call_id is required for a tool message")
            if call_id not in calls:
                raise invalid(f"{where}.tool_call_id {call_id} does not match any tool call")
            text = _text_parts(message.get("content"), where, frozenset({"text", "document"}))
        else:
            raise invalid(f"{where}.role must be one of system, user, assistant, tool")
        out.append({**message, "text": text})
    return out


def tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise invalid("tools must be an array")
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"{where}.type must be function")
        known_fields(tool, frozenset({"type", "function"}))
        function = tool.get("function")
        if not isinstance(function, dict):
            raise invalid(f"{where}.function must be an object")
        known_fields(function, frozenset({"name", "description", "parameters"}))
        if not isinstance(function.get("name"), str) or not _FUNCTION_NAME_RE.match(
            function["name"]
        ):
            raise invalid(f"{where}.function.name must match ^[a-zA-Z0-9_-]{{1,64}}$")
        parameters = function.get("parameters")
        if parameters is not None and (
            not isinstance(parameters, dict) or parameters.get("type") != "object"
        ):
            raise invalid(f"{where}.function.parameters must be a JSON schema of type object")
    return value
