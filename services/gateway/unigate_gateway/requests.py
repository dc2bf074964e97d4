"""Reading and checking client requests before anything is spent on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

from unigate.audio_duration import billed_seconds
from unigate.errors import InvalidRequest
from unigate.tokenizer import request_prompt_tokens
from unigate.tokens import estimate_body_tokens
from unigate.unit_prices import image_variant

# What a JSON call will be billed in units other than tokens: (estimated units, variant).
Units = Callable[[dict[str, Any]], tuple[int, str]]
# Cohere bills one search unit per query over up to this many documents.
DOCUMENTS_PER_SEARCH_UNIT = 100

# The largest token limit a request may ask for (OpenAI's own bound on these integers); what
# auth reserves quota for must stay far inside int64.
MAX_TOKENS_LIMIT = 2**31 - 1
# Longer than any provider's model id (Bedrock ARNs, fine-tune names included).
MAX_MODEL_LENGTH = 512


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """What the gateway needs to know of a relayed call; the body itself goes on untouched."""

    endpoint: str
    body: bytes
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int
    estimated_prompt_tokens: int
    # Of ``body``; "" for JSON.
    content_type: str = ""
    # Calls priced per unit other than tokens: the gateway's count of units (seconds of the
    # uploaded audio, characters, images, search units) and the price's variant (an image's
    # "<size>/<quality>"), for auth to price the reservation.
    estimated_units: int = 0
    price_variant: str = ""
    # The body asks for 1-hour prompt-cache entries (priced higher than 5-minute ones).
    long_cache_writes: bool = False


def counted_prompt(endpoint: str, data: dict[str, Any], model: str, body: bytes) -> int:
    """The prompt of a generating request counted with its model's tokenizer (what the
    reservation prices), else the size bound."""
    counted = request_prompt_tokens(endpoint, data, model)
    return max(counted, 1) if counted is not None else estimate_body_tokens(len(body))


def asks_long_cache(body: bytes) -> bool:
    """Whether a body may ask for 1-hour prompt-cache writes (``cache_control`` with
    ``"ttl": "1h"``): a cheap bytes test that errs towards yes, i.e. a larger reservation."""
    return b'"1h"' in body and b"cache_control" in body


def _load_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you"
            " aren't using your HTTP library correctly.)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if model is None or model == "":
        raise InvalidRequest("You must provide a model parameter.", param="model")
    if not isinstance(model, str):
        raise InvalidRequest(
            f"Invalid type for 'model': expected a string, but got {type(model).__name__}.",
            param="model",
        )
    check_model_name(model, "Invalid 'model'")
    return model


def check_model_name(model: str, prefix: str) -> None:
    """A model name fits what routing stores and looks up (text without NUL, bounded)."""
    if len(model) > MAX_MODEL_LENGTH:
        raise InvalidRequest(
            f"{prefix}: string too long. Expected a string with maximum length"
            f" {MAX_MODEL_LENGTH}, but got a string with length {len(model)} instead.",
            param="model",
        )
    if "\x00" in model:
        raise InvalidRequest(f"{prefix}: must not contain NUL characters.", param="model")


def _int_field(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"Invalid type for '{name}': expected an integer.", param=name)
    if value < 1:
        raise InvalidRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got"
            f" {value} instead.",
            param=name,
        )
    if value > MAX_TOKENS_LIMIT:
        raise InvalidRequest(
            f"Invalid '{name}': integer above maximum value. Expected a value <="
            f" {MAX_TOKENS_LIMIT}, but got {value} instead.",
            param=name,
        )
    return value


def _stream_flags(data: dict[str, Any], *, usage_option: bool) -> tuple[bool, bool]:
    """(stream, include_usage) after checking their types as OpenAI does."""
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean.", param="stream")
    options = data.get("stream_options")
    if not usage_option:
        return bool(stream), True
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(
            "Invalid type for 'stream_options': expected an object.", param="stream_options"
        )
    if options and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return bool(stream), bool(options and options.get("include_usage"))


def _require(data: dict[str, Any], *names: str) -> None:
    for name in names:
        value = data.get(name)
        if value is None or value == "" or value == []:
            raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)


def _json_call(
    endpoint: str,
    body: bytes,
    required: tuple[str, ...],
    *,
    default_model: str | None = None,
    streams: bool = False,
    usage_option: bool = False,
    max_tokens_field: str = "max_tokens",
    units: Units | None = None,
    generating: bool = False,
) -> ParsedCall:
    """The checks every JSON endpoint shares: an object, a model (or its default), the
    required fields, and the stream flags where the endpoint can stream."""
    data = _load_object(body)
    if default_model is not None and data.get("model") is None:
        model = default_model
    else:
        model = _model(data)
    _require(data, *required)
    stream, include_usage = (
        _stream_flags(data, usage_option=usage_option) if streams else (False, False)
    )
    estimated_units, variant = units(data) if units is not None else (0, "")
    return ParsedCall(
        endpoint=endpoint,
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=_int_field(data, max_tokens_field),
        estimated_units=estimated_units,
        price_variant=variant,
        estimated_prompt_tokens=counted_prompt(endpoint, data, model, body)
        if generating
        else estimate_body_tokens(len(body)),
        long_cache_writes=generating and asks_long_cache(body),
    )


def parse_completions(body: bytes) -> ParsedCall:
    return _json_call(
        "completions", body, ("prompt",), streams=True, usage_option=True, generating=True
    )


def parse_moderations(body: bytes) -> ParsedCall:
    return _json_call("moderations", body, ("input",), default_model="omni-moderation-latest")


def _image_units(data: dict[str, Any]) -> tuple[int, str]:
    n = data.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    return count, image_variant(data.get("size"), data.get("quality"))


def _speech_units(data: dict[str, Any]) -> tuple[int, str]:
    text = data.get("input")
    return (len(text) if isinstance(text, str) else 0), ""


def _rerank_units(data: dict[str, Any]) -> tuple[int, str]:
    documents = data.get("documents")
    count = len(documents) if isinstance(documents, list) else 0
    return max(math.ceil(count / DOCUMENTS_PER_SEARCH_UNIT), 1), ""


def parse_images(body: bytes) -> ParsedCall:
    return _json_call(
        "images.generations", body, ("prompt",), default_model="dall-e-2", units=_image_units
    )


def parse_speech(body: bytes) -> ParsedCall:
    return _json_call("audio.speech", body, ("input", "voice"), units=_speech_units)


def parse_rerank(body: bytes) -> ParsedCall:
    return _json_call("rerank", body, ("query", "documents"), units=_rerank_units)


def parse_responses(body: bytes) -> ParsedCall:
    return _json_call(
        "responses",
        body,
        ("input",),
        streams=True,
        max_tokens_field="max_output_tokens",
        generating=True,
    )


def parse_input_tokens(body: bytes) -> ParsedCall:
    """``POST /v1/responses/input_tokens``: a Responses body counted, never generated from."""
    return _json_call("responses.input_tokens", body, ())


def check_single_fields(names: Iterable[str]) -> None:
    """A multipart form sends each field once, but for arrays (``timestamp_granularities[]``,
    ``include[]``). A repeated one is refused: the provider reads the first ``model`` while a
    form parser keeps the last, so a second one could slip past the key's model allowlist and
    be priced as another model."""
    seen: set[str] = set()
    for name in names:
        if name in seen and not name.endswith("[]"):
            raise InvalidRequest(
                f"Duplicate parameter: '{name}'. Each form field may be sent only once.",
                param=name,
                code="duplicate_parameter",
            )
        seen.add(name)


def upload_call(
    endpoint: str, body: bytes, content_type: str, model: object, seconds: Fraction | None
) -> ParsedCall:
    """A multipart audio upload, already parsed for its ``model`` field, with the play time
    of its file (None when it could not be read)."""
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    check_model_name(model, "Invalid 'model'")
    return ParsedCall(
        endpoint=endpoint,
        body=body,
        model=model,
        stream=False,
        include_usage=False,
        max_tokens=0,
        # The upload's size says nothing about its tokens; the answer will.
        estimated_prompt_tokens=1,
        content_type=content_type,
        estimated_units=billed_seconds(seconds) if seconds is not None else 0,
    )


def parse_chat(body: bytes) -> ParsedCall:
    data = _load_object(body)
    model = _model(data)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        if messages is None:
            raise InvalidRequest("Missing required parameter: 'messages'.", param="messages")
        raise InvalidRequest(
            "Invalid 'messages': expected a non-empty array of messages.", param="messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"Invalid 'messages[{i}]': expected an object with a 'role'.",
                param=f"messages[{i}]",
            )
    stream, include_usage = _stream_flags(data, usage_option=True)
    max_tokens = _int_field(data, "max_completion_tokens") or _int_field(data, "max_tokens")
    return ParsedCall(
        endpoint="chat.completions",
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        estimated_prompt_tokens=counted_prompt("chat.completions", data, model, body),
        long_cache_writes=asks_long_cache(body),
    )


def parse_embeddings(body: bytes) -> ParsedCall:
    data = _load_object(body)
    model = _model(data)
    value = data.get("input")
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    valid = isinstance(value, str) or (
        isinstance(value, list)
        and len(value) > 0
        and (
            all(isinstance(v, str) for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value)
        )
    )
    if not valid or value == "":
        raise InvalidRequest(
            "Invalid 'input': expected a non-empty string, array of strings, array of tokens,"
            " or array of token arrays.",
            param="input",
        )
    return ParsedCall(
        endpoint="embeddings",
        body=body,
        model=model,
        stream=False,
        include_usage=False,
        max_tokens=0,
        estimated_prompt_tokens=estimate_body_tokens(len(body)),
    )


def bearer_key(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return credentials.strip()
