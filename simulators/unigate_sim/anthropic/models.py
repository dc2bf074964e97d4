"""The Claude models the simulator serves, with the limits Anthropic documents for them
("Models overview": max output; "Extended thinking": which models think; "Prompt caching":
the shortest cacheable prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from unigate_sim.anthropic.errors import AnthropicError


@dataclass(frozen=True, slots=True)
class ClaudeModel:
    """One model: display name, output limit, extended thinking, minimum cached prefix."""

    display_name: str
    max_output_tokens: int
    thinking: bool
    min_cache_tokens: int
    created_at: str


MODELS: Final[dict[str, ClaudeModel]] = {
    "claude-3-5-haiku-20241022": ClaudeModel(
        "Claude Haiku 3.5", 8192, False, 2048, "2024-10-22T00:00:00Z"
    ),
    "claude-3-5-sonnet-20241022": ClaudeModel(
        "Claude Sonnet 3.5 (New)", 8192, False, 1024, "2024-10-22T00:00:00Z"
    ),
    "claude-3-7-sonnet-20250219": ClaudeModel(
        "Claude Sonnet 3.7", 64000, True, 1024, "2025-02-24T00:00:00Z"
    ),
    "claude-sonnet-4-20250514": ClaudeModel(
        "Claude Sonnet 4", 64000, True, 1024, "2025-05-22T00:00:00Z"
    ),
    "claude-opus-4-20250514": ClaudeModel(
        "Claude Opus 4", 32000, True, 1024, "2025-05-22T00:00:00Z"
    ),
}

DEFAULT_MODELS: Final = tuple(MODELS)


# What a served model missing from MODELS (a test's own name) is taken to be.
_OTHER: Final = ClaudeModel("Claude", 8192, True, 1024, "2025-01-01T00:00:00Z")


def model_spec(model: str, served: frozenset[str]) -> ClaudeModel:
    """The model's spec, or Anthropic's 404 for a model it does not serve."""
    if model not in served:
        raise AnthropicError("not_found_error", f"model: {model}")
    return MODELS.get(model, _OTHER)
