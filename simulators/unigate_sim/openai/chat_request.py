"""Validation of a ``POST /v1/chat/completions`` body into a :class:`ChatRequest`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from unigate_sim.openai.chat_messages import validate_messages
from unigate_sim.openai.chat_tools import parse_legacy_functions, parse_tools
from unigate_sim.openai.errors import OpenAIError, bad_request, invalid_type, missing
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import ModelSpec
from unigate_sim.openai.request_body import requested_model
from unigate_sim.openai.tokens import count_prompt_tokens, message_text
from unigate_sim.openai.value_checks import (
    as_array,
    as_bool,
    as_enum,
    as_int,
    as_number,
    as_object,
    as_str,
    as_strict_object,
    reject_unknown,
)

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
_MAX_N: Final = 128
_MAX_STOP: Final = 4
_SERVICE_TIERS: Final = ("auto", "default", "flex", "scale", "priority", "fast")


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
    # Of the prompt, the tokens read from the prompt cache (set by the simulator, which
    # holds the cache).
    cached_tokens: int = 0


def stream_flags(obj: JSONObject) -> tuple[bool, bool]:
    """``(stream, include_usage)``; stream_options is refused unless streaming."""
    stream = obj.get("stream") is not None and as_bool(obj["stream"], "stream")
    options = obj.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    opts = as_strict_object(options, "stream_options", ("include_usage", "include_obfuscation"))
    if opts.get("include_obfuscation") is not None:
        as_bool(opts["include_obfuscation"], "stream_options.include_obfuscation")
    include = opts.get("include_usage")
    return stream, include is not None and as_bool(include, "stream_options.include_usage")


def _max_tokens(obj: JSONObject, spec: ModelSpec) -> int | None:
    """The completion token limit; ``max_completion_tokens`` wins over ``max_tokens``."""
    limit: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        if obj.get(name) is None:
            continue
        limit = as_int(obj[name], name, minimum=1)
        if limit > spec.max_output_tokens:
            raise bad_request(
                f"{name} is too large: {limit}. This model supports at most "
                f"{spec.max_output_tokens} completion tokens, whereas you provided {limit}.",
                name,
                "invalid_value",
            )
    return limit


def stop_sequences(obj: JSONObject) -> tuple[str, ...]:
    value = obj.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise invalid_type("stop", "one of a string or array of strings", value)
    as_array(value, "stop", max_items=_MAX_STOP)
    return tuple(as_str(item, f"stop[{index}]") for index, item in enumerate(value))


def validate_sampling(obj: JSONObject) -> None:
    """Parameters that do not change the simulated reply but must still be well formed."""
    ranges = {
        "temperature": (0.0, 2.0),
        "top_p": (0.0, 1.0),
        "presence_penalty": (-2.0, 2.0),
        "frequency_penalty": (-2.0, 2.0),
    }
    for name, (low, high) in ranges.items():
        if obj.get(name) is not None:
            as_number(obj[name], name, low, high)
    if obj.get("logit_bias") is not None:
        for token, bias in as_object(obj["logit_bias"], "logit_bias").items():
            as_number(bias, f"logit_bias.{token}", -100.0, 100.0)
    if obj.get("seed") is not None:
        as_int(obj["seed"], "seed")
    for name in ("user", "prompt_cache_key", "safety_identifier"):
        if obj.get(name) is not None:
            as_str(obj[name], name)
    if obj.get("store") is not None:
        as_bool(obj["store"], "store")
    if obj.get("metadata") is not None:
        metadata = as_object(obj["metadata"], "metadata")
        for key, value in metadata.items():
            as_str(value, f"metadata.{key}")
    enums = {
        "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "verbosity": ("low", "medium", "high"),
        "prompt_cache_retention": ("in_memory", "24h"),
    }
    for name, allowed in enums.items():
        if obj.get(name) is not None:
            as_enum(obj[name], name, allowed)
    if obj.get("modalities") is not None:
        for index, item in enumerate(as_array(obj["modalities"], "modalities")):
            as_enum(item, f"modalities[{index}]", ("text", "audio"))
    for name in ("audio", "prediction", "web_search_options", "moderation", "prompt_cache_options"):
        if obj.get(name) is not None:
            as_object(obj[name], name)


def _logprobs(obj: JSONObject) -> tuple[bool, int]:
    logprobs = obj.get("logprobs") is not None and as_bool(obj["logprobs"], "logprobs")
    if obj.get("top_logprobs") is None:
        return logprobs, 0
    top = as_int(obj["top_logprobs"], "top_logprobs", 0, 20)
    if not logprobs:
        raise bad_request(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is specified.",
            "top_logprobs",
        )
    return logprobs, top


def _response_format(obj: JSONObject, messages: Sequence[JSONObject]) -> JSONObject | None:
    if obj.get("response_format") is None:
        return None
    fmt = as_object(obj["response_format"], "response_format")
    if "type" not in fmt:
        raise missing("response_format.type")
    kind = as_enum(fmt["type"], "response_format.type", ("text", "json_object", "json_schema"))
    reject_unknown(
        fmt, ("type", "json_schema") if kind == "json_schema" else ("type",), "response_format"
    )
    if kind == "json_schema":
        if "json_schema" not in fmt:
            raise missing("response_format.json_schema")
        path = "response_format.json_schema"
        schema = as_strict_object(
            fmt["json_schema"], path, ("name", "description", "schema", "strict"), ("name",)
        )
        as_str(schema["name"], f"{path}.name")
        if schema.get("schema") is not None:
            as_object(schema["schema"], f"{path}.schema")
    if kind == "json_object" and not any(
        "json" in message_text(message).lower() for message in messages
    ):
        raise bad_request(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
            "messages",
        )
    return fmt


def _check_context(spec: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> None:
    window = spec.context_window
    if prompt_tokens > window:
        raise bad_request(
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            "messages",
            "context_length_exceeded",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > window:
        raise bad_request(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion.",
            "messages",
            "context_length_exceeded",
        )


def parse_chat_request(payload: JSONObject, models: Sequence[str]) -> ChatRequest:
    """Validate a ``POST /v1/chat/completions`` body as OpenAI does, in OpenAI's order."""
    model, spec = requested_model(payload, _CHAT_PARAMETERS, models)
    if spec.kind != "chat":
        raise OpenAIError(
            404,
            "This is not a chat model and thus not supported in the v1/chat/completions "
            "endpoint. Did you mean to use v1/completions?",
            param="model",
        )
    if "messages" not in payload:
        raise missing("messages")
    messages = validate_messages(payload["messages"])
    stream, include_usage = stream_flags(payload)
    n = 1 if payload.get("n") is None else as_int(payload["n"], "n", 1, _MAX_N)
    max_tokens = _max_tokens(payload, spec)
    stop = stop_sequences(payload)
    validate_sampling(payload)
    logprobs, top_logprobs = _logprobs(payload)
    tools, tool_choice = parse_tools(payload)
    functions, function_call = parse_legacy_functions(payload)
    response_format = _response_format(payload, messages)
    tier = payload.get("service_tier")
    service_tier = "auto" if tier is None else as_enum(tier, "service_tier", _SERVICE_TIERS)
    # Definitions are billed as sent, whichever of the two styles the client used.
    prompt_tokens = count_prompt_tokens(messages, payload.get("tools") or functions or ())
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
