"""What the simulated model answers to a validated chat request.

It echoes the last user message (or the tool results), in the requested format; with
functions offered it calls one when told to (also right after tool results), or when the
user asks about the weather.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from unigate_sim.openai.chat_request import ChatRequest
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import count_tokens, message_text, truncate_tokens

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


def _example_object(schema: JSONObject, text: str, depth: int, root: JSONObject) -> JSONObject:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    return {
        name: _example_value(sub, text, depth + 1, root)
        for name, sub in properties.items()
        if not isinstance(required, list) or name in required
    }


def _referenced(ref: str, root: JSONObject) -> Any:
    """The schema a local ``$ref`` (``#``, ``#/$defs/Name``, ``#/definitions/Name``) names."""
    target: Any = root
    for part in ref.removeprefix("#").split("/")[1:] if ref.startswith("#") else [None]:
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target


def _example_value(schema: Any, text: str, depth: int = 0, root: Any = None) -> Any:
    """A value matching a JSON schema, built from ``text``: how tool arguments are made up.
    Local ``$ref``s (pydantic's nested models) are followed within ``root``."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    root = schema if root is None else root
    if isinstance(schema.get("$ref"), str):
        return _example_value(_referenced(schema["$ref"], root), text, depth + 1, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _example_value(options[0], text, depth + 1, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return _example_object(schema, text, depth, root)
    if kind == "array":
        items = schema.get("items")
        return [] if items is None else [_example_value(items, text, depth + 1, root)]
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


def schema_in_prompt(messages: Sequence[JSONObject]) -> JSONObject | None:
    """A JSON Schema a system message states (JSON mode told the shape in words): the JSON
    object that ends the message, when it has ``properties``."""
    for message in messages:
        if message.get("role") not in ("system", "developer"):
            continue
        text = message_text(message)
        start = text.find("{")
        while start >= 0:
            try:
                value = orjson.loads(text[start:])
            except orjson.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                return value
            break
    return None


def shaped_content(
    response_format: JSONObject | None, echo: str, messages: Sequence[JSONObject] = ()
) -> str:
    """The reply text in the requested format: plain, a JSON object, or schema-shaped JSON.
    In JSON mode the simulated model follows a schema the system prompt states (as models
    told a shape in words do), else answers ``{"content": echo}``."""
    kind = response_format["type"] if response_format else "text"
    if kind == "json_object":
        stated = schema_in_prompt(messages)
        if stated is not None:
            return orjson.dumps(_example_value(stated, echo)).decode()
        return orjson.dumps({"content": echo}).decode()
    if kind == "json_schema":
        assert response_format is not None
        schema = response_format["json_schema"].get("schema")
        return orjson.dumps(_example_value(schema, echo) if schema else {}).decode()
    return echo


def apply_stop(content: str, stops: Sequence[str]) -> str:
    """Cut the content before the first stop sequence it contains."""
    positions = [content.find(stop) for stop in stops if stop and stop in content]
    return content[: min(positions)] if positions else content


def plan_reply(request: ChatRequest) -> Reply:
    """Decide what the simulated model answers to a validated request."""
    last = request.messages[-1]
    # With tool results in, the model answers from them rather than calling again, unless
    # the request forces a call ("required" or a named function), which OpenAI honours on
    # every turn (clients that retry a failed call, like instructor, rely on it). The
    # arguments are then made up from the results.
    answering = last["role"] in ("tool", "function")
    text = message_text(last) if answering else _last_user_text(request.messages)
    asked = "" if answering else text
    tool = _chosen_function(request.tools, request.tool_choice, "required", asked)
    if tool is not None:
        return Reply(tool_call=_make_call(tool, text), finish_reason="tool_calls")
    function = _chosen_function(request.functions, request.function_call, "", asked)
    if function is not None:
        return Reply(function_call=_make_call(function, text), finish_reason="function_call")
    content = apply_stop(
        shaped_content(request.response_format, "Echo: " + text, request.messages), request.stop
    )
    if request.max_tokens is not None:
        content, truncated = truncate_tokens(content, request.max_tokens)
        if truncated:
            return Reply(content=content, finish_reason="length")
    return Reply(content=content)
