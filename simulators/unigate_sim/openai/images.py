"""``POST /v1/images/generations``: validation per model and deterministic one-pixel images.

Every image is a valid 1x1 PNG whose colour comes from a hash of the model, the prompt and
the image's index, so the same request always draws the same images. ``url`` answers point
at ``GET /images/<digest>.png`` on the simulator itself, which serves that PNG without
authentication (like the signed blob URLs OpenAI hands out). gpt-image-1 always answers
``b64_json`` and reports ``usage``; whatever ``output_format`` it is asked for, the bytes
are a PNG.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from unigate_sim.openai.errors import (
    bad_request,
    invalid_value,
    missing,
    string_too_long,
    unknown_parameter,
)
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import resolve_model, served_of_kind
from unigate_sim.openai.tokens import count_tokens
from unigate_sim.openai.value_checks import as_bool, as_enum, as_int, as_str

DEFAULT_IMAGE_MODEL: Final = "dall-e-2"
_COMMON: Final = frozenset({"prompt", "model", "n", "size", "quality", "user"})
_DALL_E: Final = _COMMON | {"response_format"}
_GPT_IMAGE: Final = _COMMON | {
    "background",
    "moderation",
    "output_compression",
    "output_format",
    "stream",
    "partial_images",
}


@dataclass(frozen=True, slots=True)
class _Rules:
    """What one image model accepts."""

    parameters: frozenset[str]
    sizes: tuple[str, ...]
    qualities: tuple[str, ...]
    max_n: int
    max_prompt: int
    default_size: str = "1024x1024"


_RULES: Final[dict[str, _Rules]] = {
    "dall-e-2": _Rules(_DALL_E, ("256x256", "512x512", "1024x1024"), ("standard",), 10, 1000),
    "dall-e-3": _Rules(
        _DALL_E | {"style"}, ("1024x1024", "1792x1024", "1024x1792"), ("standard", "hd"), 1, 4000
    ),
    "gpt-image-1": _Rules(
        _GPT_IMAGE,
        ("auto", "1024x1024", "1536x1024", "1024x1536"),
        ("auto", "low", "medium", "high"),
        10,
        32000,
        "auto",
    ),
}
# gpt-image-1's output tokens per image, by size and quality (OpenAI's pricing table).
_OUTPUT_TOKENS: Final[dict[str, dict[str, int]]] = {
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1536x1024": {"low": 400, "medium": 1568, "high": 6208},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
}


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: str
    prompt: str
    n: int
    size: str
    quality: str
    b64: bool
    output_format: str
    background: str


def _optional_enum(payload: JSONObject, name: str, allowed: Sequence[str], default: str) -> str:
    value = payload.get(name)
    return default if value is None else as_enum(value, name, allowed)


def _gpt_image_options(payload: JSONObject) -> tuple[str, str]:
    """Validate gpt-image-1's own parameters; its ``(output_format, background)``."""
    output_format = _optional_enum(payload, "output_format", ("png", "jpeg", "webp"), "png")
    background = _optional_enum(payload, "background", ("transparent", "opaque", "auto"), "auto")
    _optional_enum(payload, "moderation", ("low", "auto"), "auto")
    if payload.get("output_compression") is not None:
        as_int(payload["output_compression"], "output_compression", 0, 100)
    if payload.get("partial_images") is not None:
        as_int(payload["partial_images"], "partial_images", 0, 3)
    if payload.get("stream") is not None and as_bool(payload["stream"], "stream"):
        raise bad_request("The simulator does not stream image generations.", "stream")
    return output_format, "opaque" if background == "auto" else background


def parse_image_request(payload: JSONObject, models: Sequence[str]) -> ImageRequest:
    """Validate a ``POST /v1/images/generations`` body as OpenAI does."""
    if "prompt" not in payload:
        raise missing("prompt")
    prompt = as_str(payload["prompt"], "prompt")
    raw_model = payload.get("model")
    model = DEFAULT_IMAGE_MODEL if raw_model is None else as_str(raw_model, "model")
    if resolve_model(model, models).kind != "image" or model not in _RULES:
        raise invalid_value("model", model, served_of_kind(models, "image"))
    rules = _RULES[model]
    for key in payload:
        if key not in rules.parameters:
            raise unknown_parameter(key)
    if len(prompt) > rules.max_prompt:
        raise string_too_long("prompt", rules.max_prompt, len(prompt))
    n = 1 if payload.get("n") is None else as_int(payload["n"], "n", 1, 10)
    if n > rules.max_n:
        raise bad_request(f"You must provide n={rules.max_n} for this model.")
    size = _optional_enum(payload, "size", rules.sizes, rules.default_size)
    quality = _optional_enum(payload, "quality", rules.qualities, rules.qualities[0])
    if payload.get("style") is not None:
        as_enum(payload["style"], "style", ("vivid", "natural"))
    if payload.get("user") is not None:
        as_str(payload["user"], "user")
    fmt = _optional_enum(payload, "response_format", ("url", "b64_json"), "url")
    output_format, background = "png", "opaque"
    if model == "gpt-image-1":
        output_format, background = _gpt_image_options(payload)
        fmt = "b64_json"
    return ImageRequest(
        model, prompt, n, size, quality, fmt == "b64_json", output_format, background
    )


def png_pixel(rgb: bytes) -> bytes:
    """A valid 1x1 RGB PNG of one colour."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" + rgb))
        + chunk(b"IEND", b"")
    )


def image_digest(model: str, prompt: str, index: int) -> str:
    """The name of one simulated image: what its colour and its URL derive from."""
    return hashlib.sha256(f"{model}\x00{prompt}\x00{index}".encode()).hexdigest()[:32]


def image_png(digest: str) -> bytes:
    """The PNG named ``digest`` (served at ``/images/<digest>.png``)."""
    return png_pixel(bytes.fromhex(digest[:6]))


def _usage(request: ImageRequest, size: str, quality: str) -> JSONObject:
    text_tokens = count_tokens(request.prompt)
    output_tokens = _OUTPUT_TOKENS[size][quality] * request.n
    return {
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + output_tokens,
    }


def render_images(request: ImageRequest, base_url: str) -> JSONObject:
    """The images response; ``base_url`` is where the simulator serves ``url`` images."""
    data: list[JSONObject] = []
    for index in range(request.n):
        digest = image_digest(request.model, request.prompt, index)
        item: JSONObject = {}
        if request.model == "dall-e-3":
            item["revised_prompt"] = "A simulated rendering of: " + request.prompt
        if request.b64:
            item["b64_json"] = base64.b64encode(image_png(digest)).decode()
        else:
            item["url"] = f"{base_url.rstrip('/')}/images/{digest}.png"
        data.append(item)
    body: JSONObject = {"created": int(time.time()), "data": data}
    if request.model == "gpt-image-1":
        size = "1024x1024" if request.size == "auto" else request.size
        quality = "high" if request.quality == "auto" else request.quality
        body.update(
            background=request.background,
            output_format=request.output_format,
            quality=quality,
            size=size,
            usage=_usage(request, size, quality),
        )
    return body


def served_image(name: str) -> bytes | None:
    """The PNG at ``/images/<name>``, or None when no simulated image has that name."""
    digest, _, extension = name.partition(".")
    if len(digest) != 32 or extension != "png":
        return None
    try:
        bytes.fromhex(digest)
    except ValueError:
        return None
    return image_png(digest)
