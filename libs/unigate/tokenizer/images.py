"""What an image part of a prompt costs, by OpenAI's vision pricing rules.

``detail: low`` is a flat 85 tokens. Otherwise the image is fitted into 2048x2048, scaled so
its short side is 768 px, and costs 85 plus 170 per 512 px tile. The size of an inline
(``data:``) image is read from its header; a remote image is not fetched (that would put a
download on the billing path) and is taken to be 1024x1024, OpenAI's own example size.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import Any

from PIL import Image, UnidentifiedImageError

BASE_TOKENS = 85
TILE_TOKENS = 170
_ASSUMED_SIZE = (1024, 1024)


def tiles_tokens(width: int, height: int) -> int:
    """The high-detail cost of an image of ``width`` x ``height`` pixels."""
    if width <= 0 or height <= 0:
        return BASE_TOKENS
    fit = min(1.0, 2048 / max(width, height))
    w, h = width * fit, height * fit
    shrink = min(1.0, 768 / min(w, h))
    w, h = w * shrink, h * shrink
    return BASE_TOKENS + TILE_TOKENS * math.ceil(w / 512) * math.ceil(h / 512)


def _inline_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=False)
        with Image.open(io.BytesIO(raw)) as image:  # reads the header only
            return image.size
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return None


def image_part_tokens(part: dict[str, Any]) -> int:
    """Tokens of one ``image_url`` (chat) or ``input_image`` (Responses) content part."""
    image = part.get("image_url")
    if isinstance(image, dict):
        url, detail = image.get("url"), image.get("detail")
    else:
        url, detail = image, part.get("detail")
    if detail == "low":
        return BASE_TOKENS
    size = _inline_size(url) if isinstance(url, str) else None
    return tiles_tokens(*(size or _ASSUMED_SIZE))
