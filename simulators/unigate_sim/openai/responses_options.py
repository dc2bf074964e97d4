"""Checks of the Responses API's optional parameters: they do not change the simulated
answer (except ``text.format``), but must be well formed."""

from __future__ import annotations

from typing import Final

from unigate_sim.openai.errors import bad_request, missing
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.value_checks import (
    as_array,
    as_bool,
    as_enum,
    as_int,
    as_number,
    as_object,
    as_str,
    as_strict_object,
)

_SERVICE_TIERS: Final = ("auto", "default", "flex", "scale", "priority")
_FORMAT_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "text": ("type",),
    "json_object": ("type",),
    "json_schema": ("type", "name", "schema", "description", "strict"),
}


def _stream(payload: JSONObject) -> bool:
    stream = payload.get("stream") is not None and as_bool(payload["stream"], "stream")
    if payload.get("stream_options") is not None:
        if not stream:
            raise bad_request(
                "Invalid value for 'stream_options': 'stream_options' is only allowed when "
                "'stream' is true.",
                "stream_options",
            )
        options = as_strict_object(
            payload["stream_options"], "stream_options", ("include_obfuscation",)
        )
        if options.get("include_obfuscation") is not None:
            as_bool(options["include_obfuscation"], "stream_options.include_obfuscation")
    return stream


def _text_format(payload: JSONObject) -> JSONObject:
    """``text.format``: plain text unless a JSON object or a JSON schema is asked for."""
    if payload.get("text") is None:
        return {"type": "text"}
    text = as_strict_object(payload["text"], "text", ("format", "verbosity"))
    if text.get("verbosity") is not None:
        as_enum(text["verbosity"], "text.verbosity", ("low", "medium", "high"))
    if text.get("format") is None:
        return {"type": "text"}
    fmt = as_strict_object(text["format"], "text.format", _FORMAT_KEYS["json_schema"], ("type",))
    kind = as_enum(fmt["type"], "text.format.type", tuple(_FORMAT_KEYS))
    as_strict_object(fmt, "text.format", _FORMAT_KEYS[kind])
    if kind == "json_schema":
        for key in ("name", "schema"):
            if key not in fmt:
                raise missing(f"text.format.{key}")
        as_str(fmt["name"], "text.format.name")
        as_object(fmt["schema"], "text.format.schema")
    return fmt


def _tools(payload: JSONObject) -> None:
    if payload.get("tools") is not None:
        for index, tool in enumerate(as_array(payload["tools"], "tools")):
            path = f"tools[{index}]"
            obj = as_object(tool, path)
            if "type" not in obj:
                raise missing(f"{path}.type")
            as_str(obj["type"], f"{path}.type")
    choice = payload.get("tool_choice")
    if isinstance(choice, str):
        as_enum(choice, "tool_choice", ("none", "auto", "required"))
    elif choice is not None:
        as_object(choice, "tool_choice")


def validate_options(payload: JSONObject) -> tuple[bool, JSONObject]:
    """Check the optional parameters; the request's ``(stream, text.format)``."""
    stream = _stream(payload)
    for name, (low, high) in {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}.items():
        if payload.get(name) is not None:
            as_number(payload[name], name, low, high)
    for name in ("store", "parallel_tool_calls", "background"):
        if payload.get(name) is not None:
            as_bool(payload[name], name)
    if payload.get("background"):
        raise bad_request("The simulator does not run responses in the background.", "background")
    for name in ("user", "previous_response_id", "prompt_cache_key", "safety_identifier"):
        if payload.get(name) is not None:
            as_str(payload[name], name)
    if payload.get("metadata") is not None:
        for key, value in as_object(payload["metadata"], "metadata").items():
            as_str(value, f"metadata.{key}")
    if payload.get("include") is not None:
        for index, item in enumerate(as_array(payload["include"], "include")):
            as_str(item, f"include[{index}]")
    enums = {
        "truncation": ("auto", "disabled"),
        "service_tier": _SERVICE_TIERS,
        "prompt_cache_retention": ("in_memory", "24h"),
    }
    for name, allowed in enums.items():
        if payload.get(name) is not None:
            as_enum(payload[name], name, allowed)
    if payload.get("top_logprobs") is not None:
        as_int(payload["top_logprobs"], "top_logprobs", 0, 20)
    if payload.get("max_tool_calls") is not None:
        as_int(payload["max_tool_calls"], "max_tool_calls", 1)
    for name in ("reasoning", "prompt", "moderation", "image", "prompt_cache_options"):
        if payload.get(name) is not None:
            as_object(payload[name], name)
    _tools(payload)
    return stream, _text_format(payload)
