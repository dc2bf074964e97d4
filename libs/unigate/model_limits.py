"""Published output limits and context windows of well-known models.

A request sent with a larger ``max_tokens`` than its model accepts is refused by the provider
(OpenAI: "max_tokens is too large"), as is one whose prompt plus ``max_tokens`` exceeds the
context window; so an output bound unigate injects must respect both. References: OpenAI's
model pages, Anthropic's "Models overview", Google's Gemini model pages, DeepSeek's pricing
page, Baidu's Qianfan API reference. Dated snapshots and ``-latest`` aliases share their
family's limits (prefix match).
"""

from __future__ import annotations

from typing import Final

# (prefix, max output tokens, context window or 0 when not listed here); a longer prefix
# comes before a shorter one it extends.
_LIMITS: Final[tuple[tuple[str, int, int], ...]] = (
    ("gpt-4o-mini", 16_384, 128_000),
    ("gpt-4o", 16_384, 128_000),
    ("gpt-4.1", 32_768, 1_047_576),
    ("gpt-4-turbo", 4_096, 128_000),
    ("gpt-3.5-turbo-instruct", 4_096, 4_096),
    ("gpt-3.5-turbo", 4_096, 16_385),
    ("o1-mini", 65_536, 128_000),
    ("o1", 100_000, 200_000),
    ("o3-mini", 100_000, 200_000),
    ("o4-mini", 100_000, 200_000),
    ("claude-3-haiku", 4_096, 200_000),
    ("claude-3-opus", 4_096, 200_000),
    ("claude-3-sonnet", 4_096, 200_000),
    ("claude-3-5-haiku", 8_192, 200_000),
    ("claude-3-5-sonnet", 8_192, 200_000),
    ("claude-3-7-sonnet", 64_000, 200_000),
    ("claude-sonnet-4", 64_000, 200_000),
    ("claude-haiku-4", 64_000, 200_000),
    ("claude-opus-4-5", 64_000, 200_000),
    ("claude-opus-4", 32_000, 200_000),
    ("gemini-1.5", 8_192, 0),
    ("gemini-2.0", 8_192, 0),
    ("gemini-2.5", 65_536, 0),
    ("deepseek-chat", 8_192, 0),
    ("deepseek-reasoner", 65_536, 0),
    # Qianfan's max_output_tokens ranges.
    ("ERNIE-Speed-128K", 4_096, 0),
    ("ERNIE-4.0", 2_048, 0),
    ("ERNIE-3.5", 2_048, 0),
    ("ERNIE-Speed", 2_048, 0),
    ("ERNIE-Lite", 2_048, 0),
    ("ERNIE-Tiny", 2_048, 0),
)


def _entry(model: str) -> tuple[str, int, int] | None:
    for entry in _LIMITS:
        if model.startswith(entry[0]):
            return entry
    return None


def output_limit(model: str) -> int | None:
    """The most output tokens ``model`` may be asked for, when known."""
    entry = _entry(model)
    return entry[1] if entry else None


def context_window(model: str) -> int | None:
    """Prompt plus output tokens ``model`` accepts, when known."""
    entry = _entry(model)
    return entry[2] if entry and entry[2] else None
