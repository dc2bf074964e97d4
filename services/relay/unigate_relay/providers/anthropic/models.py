"""What the relay needs to know of Claude models: their output limits, which give the
``max_tokens`` Anthropic requires when an OpenAI client sent none.

Reference: Anthropic's "Models overview" (max output per model). A model missing here gets
4,096, the limit of the oldest Claude 3 models, so any model accepts it.
"""

from __future__ import annotations

from typing import Final

FALLBACK_MAX_TOKENS: Final = 4096

# Prefixes, longest first where one prefixes another; dated snapshots and "-latest" aliases
# share their family's limit.
_MAX_OUTPUT: Final[tuple[tuple[str, int], ...]] = (
    ("claude-3-haiku", 4096),
    ("claude-3-opus", 4096),
    ("claude-3-sonnet", 4096),
    ("claude-3-5-haiku", 8192),
    ("claude-3-5-sonnet", 8192),
    ("claude-3-7-sonnet", 64000),
    ("claude-sonnet-4", 64000),
    ("claude-haiku-4", 64000),
    ("claude-opus-4-5", 64000),
    ("claude-opus-4", 32000),
)

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
    for prefix, limit in _MAX_OUTPUT:
        if model.startswith(prefix):
            return limit
    return FALLBACK_MAX_TOKENS
