"""Validation of a ``POST /v1/responses`` body (the Responses API) into a
:class:`ResponsesRequest`, with the Responses API's errors (``Unknown parameter``, paths
such as ``input[0].content[1].type``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.errors import (
    bad_request,
    invalid_type,
    invalid_value,
    missing,
    unknown_parameter,
)
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import model_spec, served_of_kind
from unigate_sim.openai.responses_options import validate_options
from unigate_sim.openai.tokens import count_prompt_tokens
from unigate_sim.openai.value_checks import (
    as_array,
    as_enum,
    as_int,
    as_object,
    as_str,
    as_strict_object,
)

_RESPONSES_PARAMETERS: Final = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "stream",
        "stream_options",
        "access_programs",
        "background",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "include",
        "max_tool_calls",
        "metadata",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
MIN_OUTPUT_TOKENS: Final = 16
_ROLES: Final = ("assistant", "system", "developer", "user")
_INPUT_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "input_text": ("type", "text"),
    "input_image": ("type", "image_url", "file_id", "detail"),
    "input_file": ("type", "file_id", "file_data", "file_url", "filename"),
}
_OUTPUT_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "output_text": ("type", "text", "annotations", "logprobs"),
    "refusal": ("type", "refusal"),
}
# Item types other than messages, with the keys each may carry and must carry.
_ITEMS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "function_call": (("type", "id", "call_id", "name", "arguments", "status"), ("call_id",)),
    "function_call_output": (("type", "id", "call_id", "output", "status"), ("call_id",)),
    "reasoning": (("type", "id", "summary", "content", "encrypted_content", "status"), ()),
    "item_reference": (("type", "id"), ("id",)),
}


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A validated Responses API request: what the answer depends on."""

    model: str
    payload: JSONObject
    #: The text the simulated model echoes: the last user message's, or tool outputs'.
    echo_text: str
    input_tokens: int
    max_output_tokens: int | None
    stream: bool
    text_format: JSONObject


def _part(part: Any, path: str, role: str) -> JSONObject:
    """A content part, as the chat-shaped part that token counting understands."""
    allowed = _OUTPUT_PARTS if role == "assistant" else _INPUT_PARTS
    obj = as_strict_object(
        part, path, {key for keys in allowed.values() for key in keys}, ("type",)
    )
    kind = as_enum(obj["type"], f"{path}.type", tuple(allowed))
    as_strict_object(obj, path, allowed[kind])
    if kind in ("input_text", "output_text"):
        if "text" not in obj:
            raise missing(f"{path}.text")
        return {"type": "text", "text": as_str(obj["text"], f"{path}.text")}
    if kind == "refusal":
        return {"type": "refusal", "refusal": as_str(obj.get("refusal"), f"{path}.refusal")}
    if kind == "input_image":
        if "image_url" not in obj and "file_id" not in obj:
            raise missing(f"{path}.image_url")
        if obj.get("detail") is not None:
            as_enum(obj["detail"], f"{path}.detail", ("low", "high", "auto"))
        return {"type": "image_url"}
    return {"type": "file"}


def _message(item: JSONObject, path: str) -> JSONObject:
    as_strict_object(item, path, ("type", "role", "content", "id", "status", "phase"), ("role",))
    role = as_enum(item["role"], f"{path}.role", _ROLES)
    if "content" not in item:
        raise missing(f"{path}.content")
    content = item["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = as_array(content, f"{path}.content")
    return {
        "role": role,
        "content": [_part(part, f"{path}.content[{i}]", role) for i, part in enumerate(parts)],
    }


def _item(value: Any, path: str) -> JSONObject:
    """One input item, as the chat-shaped message that token counting understands."""
    item = as_object(value, path)
    kind = item.get("type", "message")
    if kind == "message":
        return _message(item, path)
    kind = as_enum(kind, f"{path}.type", ("message", *_ITEMS))
    allowed, required = _ITEMS[kind]
    as_strict_object(item, path, allowed, required)
    if kind == "function_call":
        name = as_str(item.get("name"), f"{path}.name")
        arguments = as_str(item.get("arguments"), f"{path}.arguments")
        call = {"function": {"name": name, "arguments": arguments}}
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    if kind == "function_call_output":
        return {"role": "tool", "content": as_str(item.get("output"), f"{path}.output")}
    return {"role": "assistant", "content": ""}


def _echo_text(messages: Sequence[JSONObject]) -> str:
    """Tool outputs when the input ends with them, else the last user message's text."""
    trailing = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        trailing.append(message["content"])
    if trailing:
        return " ".join(reversed(trailing))
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(part["text"] for part in content if part["type"] == "text")
    return ""


def _input_messages(payload: JSONObject) -> list[JSONObject]:
    if "input" not in payload:
        if not any(payload.get(key) for key in ("prompt", "conversation", "previous_response_id")):
            raise missing("input")
        return []
    value = payload["input"]
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid_type("input", "one of a string or array of input items", value)
    return [_item(item, f"input[{index}]") for index, item in enumerate(value)]


def parse_responses_request(payload: JSONObject, models: Sequence[str]) -> ResponsesRequest:
    """Validate a ``POST /v1/responses`` body as OpenAI does."""
    if "model" not in payload:
        raise missing("model")
    model = as_str(payload["model"], "model")
    for key in payload:
        if key not in _RESPONSES_PARAMETERS:
            raise unknown_parameter(key)
    if model not in models:
        raise bad_request(
            f"The requested model '{model}' does not exist.", "model", "model_not_found"
        )
    spec = model_spec(model)
    if spec.kind != "chat":
        raise invalid_value("model", model, served_of_kind(models, "chat"))
    messages = _input_messages(payload)
    instructions = payload.get("instructions")
    if instructions is not None:
        messages = [
            {"role": "developer", "content": as_str(instructions, "instructions")},
            *messages,
        ]
    limit = payload.get("max_output_tokens")
    max_output_tokens = (
        None if limit is None else as_int(limit, "max_output_tokens", MIN_OUTPUT_TOKENS)
    )
    stream, text_format = validate_options(payload)
    input_tokens = count_prompt_tokens(messages, payload.get("tools") or ())
    if input_tokens > spec.context_window:
        raise bad_request(
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again.",
            "input",
            "context_length_exceeded",
        )
    return ResponsesRequest(
        model=model,
        payload=payload,
        echo_text=_echo_text(messages),
        input_tokens=input_tokens,
        max_output_tokens=max_output_tokens,
        stream=stream,
        text_format=text_format,
    )
