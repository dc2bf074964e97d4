"""Validation of the functions a chat request offers the model, and of its choice of them.

``tools``/``tool_choice`` is the current form; ``functions``/``function_call`` the
deprecated one, which OpenAI still accepts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from unigate_sim.openai.errors import bad_request, missing
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.value_checks import (
    as_array,
    as_bool,
    as_enum,
    as_object,
    as_str,
    as_strict_object,
)

_FUNCTION_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_TOOLS: Final = 128

#: The function definitions offered, and the choice among them ("none", "auto", ... or
#: an object naming one).
Offer = tuple[list[JSONObject], str | JSONObject]


def _function_definition(value: Any, path: str) -> JSONObject:
    """A function definition, as in ``tools[i].function`` and legacy ``functions[i]``."""
    function = as_strict_object(
        value, path, ("name", "description", "parameters", "strict"), ("name",)
    )
    name = as_str(function["name"], f"{path}.name")
    if not _FUNCTION_NAME_RE.match(name):
        raise bad_request(
            f"Invalid '{path}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{path}.name",
            "invalid_value",
        )
    if function.get("description") is not None:
        as_str(function["description"], f"{path}.description")
    if function.get("parameters") is not None:
        as_object(function["parameters"], f"{path}.parameters")
    if function.get("strict") is not None:
        as_bool(function["strict"], f"{path}.strict")
    return function


def _check_named(name: Any, param: str, name_param: str, names: Sequence[str]) -> None:
    """A function named by ``tool_choice``/``function_call`` must be among those offered."""
    if name is None:
        raise missing(name_param)
    if as_str(name, name_param) not in names:
        offered = "tools" if param == "tool_choice" else "functions"
        raise bad_request(
            f"Invalid value for '{param}': function '{name}' not found in the provided {offered}.",
            param,
        )


def _tool_choice(value: Any, names: Sequence[str]) -> str | JSONObject:
    """``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function", "function": {name}}``."""
    if isinstance(value, str):
        return as_enum(value, "tool_choice", ("none", "auto", "required"))
    keys = ("type", "function")
    choice = as_strict_object(value, "tool_choice", keys, keys)
    as_enum(choice["type"], "tool_choice.type", ("function",))
    function = as_strict_object(choice["function"], "tool_choice.function", ("name",))
    _check_named(function.get("name"), "tool_choice", "tool_choice.function.name", names)
    return choice


def _function_call_choice(value: Any, names: Sequence[str]) -> str | JSONObject:
    """The legacy ``function_call``: ``"none"``, ``"auto"`` or ``{"name": ...}``."""
    if isinstance(value, str):
        return as_enum(value, "function_call", ("none", "auto"))
    choice = as_strict_object(value, "function_call", ("name",))
    _check_named(choice.get("name"), "function_call", "function_call.name", names)
    return choice


def _reject_without(obj: JSONObject, base: str, dependents: Sequence[str]) -> None:
    """Refuse ``dependents`` in a request that does not specify ``base``."""
    for name in dependents:
        if obj.get(name) is not None:
            raise bad_request(
                f"Invalid value for '{name}': '{name}' is only allowed when '{base}' are "
                "specified.",
                name,
            )


def parse_tools(obj: JSONObject) -> Offer:
    """The tools' function definitions and the tool choice ("auto" by default)."""
    if obj.get("tools") is None:
        _reject_without(obj, "tools", ("tool_choice", "parallel_tool_calls"))
        return [], "none"
    tools = as_array(obj["tools"], "tools", min_items=1, max_items=_MAX_TOOLS)
    functions: list[JSONObject] = []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        keys = ("type", "function")
        definition = as_strict_object(tool, path, keys, keys)
        as_enum(definition["type"], f"{path}.type", ("function",))
        functions.append(_function_definition(definition["function"], f"{path}.function"))
    if obj.get("parallel_tool_calls") is not None:
        as_bool(obj["parallel_tool_calls"], "parallel_tool_calls")
    if obj.get("tool_choice") is None:
        return functions, "auto"
    return functions, _tool_choice(obj["tool_choice"], [f["name"] for f in functions])


def parse_legacy_functions(obj: JSONObject) -> Offer:
    """The deprecated ``functions``/``function_call`` pair ("auto" by default)."""
    if obj.get("functions") is None:
        _reject_without(obj, "functions", ("function_call",))
        return [], "none"
    items = as_array(obj["functions"], "functions", min_items=1, max_items=_MAX_TOOLS)
    functions = [
        _function_definition(item, f"functions[{index}]") for index, item in enumerate(items)
    ]
    if obj.get("function_call") is None:
        return functions, "auto"
    return functions, _function_call_choice(obj["function_call"], [f["name"] for f in functions])
