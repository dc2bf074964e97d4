"""The simulator's tokenizer, and the token counts that usage reports.

Text is counted with OpenAI's own o200k_base encoding (bundled with unigate, no download),
which every model the simulator serves uses; prompts follow OpenAI's published accounting
(:mod:`unigate.tokenizer.counting`), so a test can predict usage exactly with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import tiktoken

from unigate.tokenizer import counting, encoding_for_model
from unigate_sim.openai.json_types import JSONObject

#: Overhead of every message in the prompt, as in OpenAI's own accounting.
TOKENS_PER_MESSAGE: Final = counting.TOKENS_PER_MESSAGE
#: Every reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING_TOKENS: Final = counting.REPLY_PRIMING
#: What a low-detail image part costs (OpenAI's flat rate).
IMAGE_PART_TOKENS: Final = 85
_MODEL: Final = "gpt-4o"


def _encoding() -> tiktoken.Encoding:
    return encoding_for_model(_MODEL)


def encode(text: str) -> list[int]:
    """``text``'s token ids (o200k_base)."""
    return _encoding().encode(text, disallowed_special=()) if text else []


def count_tokens(text: str) -> int:
    """Count ``text``'s tokens as the simulated models do (o200k_base).
    ``count_tokens("Hello, world!") == 4``."""
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def _token_starts(text: str) -> list[int]:
    """Where each token of ``text`` starts, merged so that no start falls inside a character
    (a CJK character can span two tokens; a stream never splits one)."""
    _, offsets = _encoding().decode_with_offsets(_encoding().encode(text, disallowed_special=()))
    starts: list[int] = []
    for offset in offsets:
        if not starts or offset > starts[-1]:
            starts.append(offset)
    return starts


def token_pieces(text: str) -> list[str]:
    """Split ``text`` into one piece per token (tokens sharing a character go together).

    The pieces join back to ``text`` exactly; streams send one piece per chunk, like OpenAI
    sends one token per chunk.
    """
    if not text:  # no token, no piece (a stop sequence can cut an answer to nothing)
        return []
    starts = _token_starts(text)
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The first ``limit`` tokens of ``text`` (whole characters), and whether anything was
    cut off."""
    tokens = _encoding().encode(text, disallowed_special=())
    if len(tokens) <= limit:
        return text, False
    starts = _token_starts(text)
    return text[: starts[limit]] if limit < len(starts) else text, True


def message_text(message: JSONObject) -> str:
    """The text of a message's content: the string, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            value = part.get(part["type"])
            if isinstance(value, str):
                texts.append(value)
    return " ".join(texts)


def count_prompt_tokens(messages: Iterable[JSONObject], tools: Iterable[Any] = ()) -> int:
    """Prompt tokens of a chat request, as reported in ``usage.prompt_tokens``: OpenAI's
    cookbook accounting (3 per message plus its strings, 3 for the reply, tool definitions by
    the gpt-4o formula, images by size)."""
    return counting.chat_prompt_tokens(messages, tools, _MODEL)
