"""What the relay needs to know of Claude models: their output limits, which give the
``max_tokens`` Anthropic requires when an OpenAI client sent none.

The limits are `unigate.model_limits` (Anthropic's "Models overview"). A model missing here gets
4,096, the limit of the oldest Claude 3 models, so any model accepts it.
"""

from __future__ import annotations

from typing import Final

from unigate.model_limits import output_limit

FALLBACK_MAX_TOKENS: Final = 4096

#: The models a channel of this type serves when the operator lists none.
DEFAULT_MODELS: Final = (
    "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
)


def max_output_tokens(model: str) -> int:
    """The most output tokens ``model`` may be asked for (its ``max_tokens`` ceiling)."""
    return output_limit(model) or FALLBACK_MAX_TOKENS
