"""``POST /v1/embeddings``: request validation and deterministic unit-vector embeddings."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.errors import OpenAIError, array_too_long, bad_request, missing
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import ModelSpec
from unigate_sim.openai.request_body import requested_model
from unigate_sim.openai.tokens import count_tokens
from unigate_sim.openai.value_checks import as_enum, as_int, as_str

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
    invalid = bad_request(_INVALID_INPUT_MESSAGE)
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
        raise array_too_long("input", MAX_EMBEDDING_INPUTS, len(value))
    return list(value)


def _input_tokens(item: EmbeddingInput) -> int:
    return count_tokens(item) if isinstance(item, str) else len(item)


def _embedding_dimensions(value: Any, spec: ModelSpec) -> int:
    if value is None:
        return spec.embedding_dimensions
    if not spec.supports_dimensions:
        raise bad_request("This model does not support specifying dimensions.")
    return as_int(value, "dimensions", 1, spec.embedding_dimensions)


def parse_embedding_request(payload: JSONObject, models: Sequence[str]) -> EmbeddingRequest:
    """Validate a ``POST /v1/embeddings`` body as OpenAI does."""
    model, spec = requested_model(payload, _EMBEDDING_PARAMETERS, models)
    if not spec.is_embedding:
        raise OpenAIError(403, "You are not allowed to generate embeddings from this model")
    if "input" not in payload:
        raise missing("input")
    inputs = _embedding_inputs(payload["input"])
    fmt = payload.get("encoding_format")
    encoding = "float" if fmt is None else as_enum(fmt, "encoding_format", ("float", "base64"))
    dimensions = _embedding_dimensions(payload.get("dimensions"), spec)
    if payload.get("user") is not None:
        as_str(payload["user"], "user")
    tokens = [_input_tokens(item) for item in inputs]
    for count in tokens:
        if count > spec.context_window:
            raise bad_request(
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
