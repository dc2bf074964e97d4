"""Validation of a chat request's ``messages``, as strict as OpenAI's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from unigate_sim.openai.errors import (
    OpenAIError,
    bad_request,
    empty_array,
    invalid_type,
    missing,
)
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.value_checks import (
    as_array,
    as_enum,
    as_object,
    as_str,
    as_strict_object,
    reject_unknown,
)

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
    # "name" is not in the reference's tool message either, but OpenAI's own function-calling
    # guide sent it (`{"tool_call_id", "role": "tool", "name", "content"}`) and clients still
    # do (instructor's retry of a failed call), so OpenAI accepts it.
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
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
    obj = as_object(part, path)
    if "type" not in obj:
        raise missing(f"{path}.type")
    kind = as_enum(obj["type"], f"{path}.type", allowed)
    if kind == "refusal":
        reject_unknown(obj, ("type", kind), path)
    else:
        reject_unknown(obj, ("type", kind, "prompt_cache_breakpoint"), path)
        if obj.get("prompt_cache_breakpoint") is not None:
            as_object(obj["prompt_cache_breakpoint"], f"{path}.prompt_cache_breakpoint")
    if kind not in obj:
        raise missing(f"{path}.{kind}")
    payload = obj[kind]
    if kind in ("text", "refusal"):
        as_str(payload, f"{path}.{kind}")
    elif kind == "image_url":
        image_path = f"{path}.image_url"
        image = as_strict_object(payload, image_path, ("url", "detail"), ("url",))
        as_str(image["url"], f"{image_path}.url")
        if image.get("detail") is not None:
            as_enum(image["detail"], f"{image_path}.detail", ("auto", "low", "high"))
    elif kind == "input_audio":
        audio_path = f"{path}.input_audio"
        audio = as_strict_object(payload, audio_path, ("data", "format"), ("data", "format"))
        as_str(audio["data"], f"{audio_path}.data")
        as_enum(audio["format"], f"{audio_path}.format", ("wav", "mp3"))
    else:
        as_strict_object(payload, f"{path}.file", ("file_data", "file_id", "filename"))


def _validate_content(message: JSONObject, path: str, role: str) -> None:
    if "content" not in message:
        raise missing(f"{path}.content")
    content = message["content"]
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_type(f"{path}.content", "one of a string or array of objects", content)
    if not content:
        raise empty_array(f"{path}.content")
    for index, part in enumerate(content):
        _validate_part(part, f"{path}.content[{index}]", _PART_TYPES[role])


def _validate_function_call(value: Any, path: str) -> None:
    """A ``{name, arguments}`` object, as in tool calls and legacy function calls."""
    obj = as_strict_object(value, path, ("name", "arguments"))
    # Unlike elsewhere, each key is checked in full before the next one.
    for key in ("name", "arguments"):
        if key not in obj:
            raise missing(f"{path}.{key}")
        as_str(obj[key], f"{path}.{key}")


def _validate_tool_calls(value: Any, path: str) -> None:
    calls = as_array(value, path, min_items=1)
    for index, call in enumerate(calls):
        call_path = f"{path}[{index}]"
        keys = ("id", "type", "function")
        obj = as_strict_object(call, call_path, keys, keys)
        as_str(obj["id"], f"{call_path}.id")
        as_enum(obj["type"], f"{call_path}.type", ("function",))
        _validate_function_call(obj["function"], f"{call_path}.function")


def _validate_assistant(index: int, message: JSONObject) -> None:
    path = f"messages[{index}]"
    if message.get("tool_calls") is not None:
        _validate_tool_calls(message["tool_calls"], f"{path}.tool_calls")
    if message.get("function_call") is not None:
        _validate_function_call(message["function_call"], f"{path}.function_call")
    if message.get("refusal") is not None:
        as_str(message["refusal"], f"{path}.refusal")
    if message.get("annotations") is not None:
        as_array(message["annotations"], f"{path}.annotations")
    if message.get("content") is not None:
        _validate_content(message, path, "assistant")
        return
    # Content may only be absent when something else carries the assistant's turn.
    if not any(message.get(key) is not None for key in ("tool_calls", "function_call", "audio")):
        # OpenAI's older validator: note the "messages.[i]" spelling of the param.
        raise bad_request(
            "Invalid value for 'content': expected a string, got null.",
            f"messages.[{index}].content",
        )


def _validate_message(index: int, message: Any) -> None:
    path = f"messages[{index}]"
    obj = as_object(message, path)
    if "role" not in obj:
        raise missing(f"{path}.role")
    role = as_enum(obj["role"], f"{path}.role", _ROLES)
    reject_unknown(obj, _MESSAGE_FIELDS[role], path)
    if obj.get("name") is not None:
        as_str(obj["name"], f"{path}.name")
    if role == "assistant":
        _validate_assistant(index, obj)
    elif role == "function":
        if obj.get("name") is None:
            raise missing(f"{path}.name")
        if obj.get("content") is not None:
            as_str(obj["content"], f"{path}.content")
    else:
        _validate_content(obj, path, role)
    if role == "tool":
        if obj.get("tool_call_id") is None:
            raise bad_request(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                "'tool_call_id'.",
                f"messages.[{index}].tool_call_id",
            )
        as_str(obj["tool_call_id"], f"{path}.tool_call_id")


def _unanswered_calls_error(index: int, pending: Sequence[str]) -> OpenAIError:
    return bad_request(
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
                raise bad_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            call_id = message["tool_call_id"]
            if call_id not in calls:
                raise bad_request(
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


def validate_messages(value: Any) -> list[JSONObject]:
    """The ``messages`` of a chat request, each validated, then their tool call sequence."""
    messages = as_array(value, "messages", min_items=1)
    for index, message in enumerate(messages):
        _validate_message(index, message)
    _validate_tool_sequence(messages)
    return messages
