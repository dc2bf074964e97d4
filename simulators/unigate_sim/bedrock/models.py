"""Bedrock's model ids for the Claude models (Bedrock's "Supported foundation models"), and
the cross-region inference profiles (``us.``, ``eu.``, ``apac.`` before the id)."""

from __future__ import annotations

import re
from typing import Final

from unigate_sim.bedrock.errors import BedrockError

MODEL_IDS: Final[dict[str, str]] = {
    "anthropic.claude-3-5-haiku-20241022-v1:0": "claude-3-5-haiku-20241022",
    "anthropic.claude-3-5-sonnet-20241022-v2:0": "claude-3-5-sonnet-20241022",
    "anthropic.claude-3-7-sonnet-20250219-v1:0": "claude-3-7-sonnet-20250219",
    "anthropic.claude-sonnet-4-20250514-v1:0": "claude-sonnet-4-20250514",
    "anthropic.claude-opus-4-20250514-v1:0": "claude-opus-4-20250514",
}
_PROFILE: Final = re.compile(r"^(?:us|eu|apac)\.")


def claude_model(model_id: str) -> str:
    """Claude's name for a Bedrock model id; Bedrock's 400 for an id it does not know."""
    name = MODEL_IDS.get(_PROFILE.sub("", model_id, count=1))
    if name is None:
        raise BedrockError("ValidationException", "The provided model identifier is invalid.")
    return name
