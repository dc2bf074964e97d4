"""``POST /v1/moderations``: validation and a deterministic classifier.

Text that contains the word "kill" is flagged for violence; nothing else is flagged. Every
score is derived from a hash of the category and the input, so the same input always
scores the same. Images are accepted (by omni models) but never flagged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.errors import bad_request, invalid_value, missing
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import resolve_model, served_of_kind
from unigate_sim.openai.value_checks import (
    as_enum,
    as_str,
    as_strict_object,
    reject_unrecognized,
)

_MODERATION_PARAMETERS: Final = frozenset({"model", "input"})
DEFAULT_MODERATION_MODEL: Final = "omni-moderation-latest"
#: The categories, in the order OpenAI lists them, and whether images are scored for them.
CATEGORIES: Final[dict[str, bool]] = {
    "harassment": False,
    "harassment/threatening": False,
    "hate": False,
    "hate/threatening": False,
    "illicit": False,
    "illicit/violent": False,
    "self-harm": True,
    "self-harm/intent": True,
    "self-harm/instructions": True,
    "sexual": True,
    "sexual/minors": False,
    "violence": True,
    "violence/graphic": True,
}
_FLAG_RE: Final = re.compile(r"\bkill\b", re.IGNORECASE)
_FLAGGED_CATEGORY: Final = "violence"
_INVALID_INPUT_MESSAGE: Final = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


@dataclass(frozen=True, slots=True)
class ModerationInput:
    """One classified input: its text and whether it carries an image."""

    text: str
    has_text: bool
    has_image: bool


@dataclass(frozen=True, slots=True)
class ModerationRequest:
    model: str
    inputs: list[ModerationInput]


def _multimodal(parts: list[Any], omni: bool, model: str) -> ModerationInput:
    """An array of text and image_url parts, classified together as one input."""
    texts: list[str] = []
    has_image = False
    for index, part in enumerate(parts):
        path = f"input[{index}]"
        kind = as_enum(
            as_strict_object(part, path, ("type", "text", "image_url"), ("type",))["type"],
            f"{path}.type",
            ("text", "image_url"),
        )
        if kind == "text":
            as_strict_object(part, path, ("type", "text"), ("text",))
            texts.append(as_str(part["text"], f"{path}.text"))
            continue
        if not omni:
            raise bad_request(f"Model {model} does not support image inputs.", f"{path}.type")
        as_strict_object(part, path, ("type", "image_url"), ("image_url",))
        image = as_strict_object(part["image_url"], f"{path}.image_url", ("url",), ("url",))
        as_str(image["url"], f"{path}.image_url.url")
        has_image = True
    return ModerationInput(" ".join(texts), bool(texts), has_image)


def _inputs(value: Any, omni: bool, model: str) -> list[ModerationInput]:
    if isinstance(value, str):
        return [ModerationInput(value, True, False)]
    if not isinstance(value, list) or not value:
        raise bad_request(_INVALID_INPUT_MESSAGE)
    if all(isinstance(item, str) for item in value):
        return [ModerationInput(item, True, False) for item in value]
    if all(isinstance(item, dict) for item in value):
        return [_multimodal(value, omni, model)]
    raise bad_request(_INVALID_INPUT_MESSAGE)


def parse_moderation_request(payload: JSONObject, models: Sequence[str]) -> ModerationRequest:
    """Validate a ``POST /v1/moderations`` body as OpenAI does."""
    raw_model = payload.get("model")
    model = DEFAULT_MODERATION_MODEL if raw_model is None else as_str(raw_model, "model")
    reject_unrecognized(payload, _MODERATION_PARAMETERS)
    spec = resolve_model(model, models)
    if spec.kind != "moderation":
        raise invalid_value("model", model, served_of_kind(models, "moderation"))
    if "input" not in payload:
        raise missing("input")
    return ModerationRequest(model, _inputs(payload["input"], model.startswith("omni"), model))


def _score(category: str, text: str) -> float:
    """A small deterministic score in [0, 0.001) for a category that is not flagged."""
    digest = hashlib.sha256(f"{category}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 / 1000


def _result(item: ModerationInput) -> JSONObject:
    flagged = item.has_text and _FLAG_RE.search(item.text) is not None
    categories: JSONObject = {}
    scores: JSONObject = {}
    applied: JSONObject = {}
    for category, scores_images in CATEGORIES.items():
        hit = flagged and category == _FLAGGED_CATEGORY
        categories[category] = hit
        scores[category] = 0.9 + _score(category, item.text) if hit else _score(category, item.text)
        types = ["text"] if item.has_text else []
        if item.has_image and scores_images:
            types.append("image")
        applied[category] = types
    return {
        "flagged": flagged,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def render_moderation(request: ModerationRequest) -> JSONObject:
    """The moderation object: one result per input."""
    return {
        "id": random_id("modr-", 32),
        "model": request.model,
        "results": [_result(item) for item in request.inputs],
    }
