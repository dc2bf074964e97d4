"""The simulator's tokenizer, and the token counts that usage reports.

Deterministic and simple on purpose, so tests can predict usage exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from unigate_sim.openai.json_types import JSONObject

_CJK: Final = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
)
# A token is one CJK character, a run of other word characters, or one symbol.
_TOKEN_RE: Final = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])\w)+|[^\w\s]")

#: Overhead of every message in the prompt, as in OpenAI's own accounting.
TOKENS_PER_MESSAGE: Final = 3
#: Every reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING_TOKENS: Final = 3
#: Flat cost of an image part (what a low-detail image costs on gpt-4o).
IMAGE_PART_TOKENS: Final = 85


def count_tokens(text: str) -> int:
    """Count tokens with the simulator's tokenizer.

    Deterministic and simple on purpose, so tests can predict usage: every run of word
    characters is one token, as is every punctuation character or symbol and every CJK
    character; whitespace is free. ``count_tokens("Hello, world!") == 4``.
    """
    return len(_TOKEN_RE.findall(text))


def _token_ends(text: str) -> list[int]:
    """Where each token of ``text`` ends."""
    return [match.end() for match in _TOKEN_RE.finditer(text)]


def token_pieces(text: str) -> list[str]:
    """Split ``text`` into one piece per token, each with the whitespace before it.

    The pieces join back to ``text`` exactly (trailing whitespace rides on the last piece);
    streams send one piece per chunk, like OpenAI sends one token per chunk.
    """
    ends = _token_ends(text)
    if not ends:
        return [text] if text else []
    pieces = [text[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    pieces[-1] += text[ends[-1] :]
    return pieces


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The first ``limit`` tokens of ``text``, and whether anything was cut off."""
    ends = _token_ends(text)
    if len(ends) <= limit:
        return text, False
    return text[: ends[limit - 1]], True


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


def _call_tokens(function: Any) -> int:
    """Tokens of a function call (name and arguments) carried by a message."""
    if not isinstance(function, dict):
        return 0
    name, arguments = function.get("name"), function.get("arguments")
    return count_tokens(name if isinstance(name, str) else "") + count_tokens(
        arguments if isinstance(arguments, str) else ""
    )


def _image_parts(message: JSONObject) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def count_prompt_tokens(messages: Iterable[JSONObject]) -> int:
    """Prompt tokens of a chat request, as reported in ``usage.prompt_tokens``.

    ``REPLY_PRIMING_TOKENS`` plus, per message, ``TOKENS_PER_MESSAGE`` +
    ``count_tokens(message_text(m))`` + ``IMAGE_PART_TOKENS`` per image part + the tokens
    of any tool/function calls it carries (name and arguments). Tool definitions are free.
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(message_text(message))
        total += IMAGE_PART_TOKENS * _image_parts(message)
        for call in message.get("tool_calls") or ():
            total += _call_tokens(call.get("function"))
        total += _call_tokens(message.get("function_call"))
    return total
