"""Input token counts and prompt caching, deterministic so tests can predict them.

Text is counted with the OpenAI simulator's tokenizer (:func:`count_tokens`); each message
costs :data:`TOKENS_PER_MESSAGE` more, an image :data:`IMAGE_TOKENS` (Anthropic's estimate
for a ~1.15 megapixel image, the largest it does not downscale), a PDF page set
:data:`DOCUMENT_TOKENS`; offering tools adds Anthropic's tool-use system prompt
(:data:`TOOLS_SYSTEM_TOKENS`) and each definition's name, description and JSON schema.

Caching follows Anthropic's "Prompt caching": the prompt is read in the order tools → system
→ messages; each block with ``cache_control`` ends a cacheable prefix (if it is at least the
model's minimum). A prefix seen before (same model, same content) is a cache read; the part
of the last breakpoint's prefix beyond the longest read is written (cache creation) and
remembered. The rest is ``input_tokens``. Writes are split by lifetime as Anthropic bills
them ("Mixing different TTLs"): A is the longest read prefix, B the last 1-hour breakpoint
beyond A (else A), C the last breakpoint; B - A are 1-hour writes, C - B 5-minute ones.
Entries never expire here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from unigate_sim.anthropic.blocks import cache_ttl
from unigate_sim.anthropic.request import MessagesRequest
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import count_tokens

TOKENS_PER_MESSAGE: Final = 3
IMAGE_TOKENS: Final = 1600
DOCUMENT_TOKENS: Final = 1500
# Anthropic's tool-use system prompt for Claude 3.5+/4 models with tool_choice auto/none.
TOOLS_SYSTEM_TOKENS: Final = 346


def _json_tokens(value: Any) -> int:
    return count_tokens(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def block_tokens(block: JSONObject) -> int:
    """Tokens of one content block."""
    kind = block["type"]
    if kind == "text":
        return count_tokens(block["text"])
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        source = block["source"]
        return count_tokens(source["data"]) if source["type"] == "text" else DOCUMENT_TOKENS
    if kind == "tool_use":
        return count_tokens(block["name"]) + _json_tokens(block["input"])
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return count_tokens(content) + 1
        return 1 + sum(block_tokens(inner) for inner in content or [])
    if kind == "thinking":
        return count_tokens(block["thinking"])
    return count_tokens(str(block.get("data", "")))


def tool_tokens(tool: JSONObject) -> int:
    """Tokens of one tool definition."""
    return (
        count_tokens(tool["name"])
        + count_tokens(str(tool.get("description") or ""))
        + _json_tokens(tool["input_schema"])
    )


@dataclass(frozen=True, slots=True)
class _Piece:
    """One countable piece of the prompt, in cache order."""

    tokens: int
    content: Any
    # The lifetime of the cache entry this piece ends ("5m", "1h"); None: no breakpoint.
    ttl: str | None


def _pieces(request: MessagesRequest) -> Iterator[_Piece]:
    if request.tools:
        yield _Piece(TOOLS_SYSTEM_TOKENS, "tools", None)
    for tool in request.tools:
        yield _Piece(tool_tokens(tool), tool, cache_ttl(tool))
    for block in request.system:
        yield _Piece(block_tokens(block), block, cache_ttl(block))
    for message in request.messages:
        yield _Piece(TOKENS_PER_MESSAGE, message["role"], None)
        for block in message["content"]:
            yield _Piece(block_tokens(block), block, cache_ttl(block))


def input_tokens(request: MessagesRequest) -> int:
    """Every input token of the request (what count_tokens answers)."""
    return sum(piece.tokens for piece in _pieces(request))


@dataclass(frozen=True, slots=True)
class InputUsage:
    """The prompt's split into uncached input, cache writes and cache reads."""

    input_tokens: int
    # Every write, 1-hour ones included (Anthropic's cache_creation_input_tokens).
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    ephemeral_1h_input_tokens: int = 0

    @property
    def ephemeral_5m_input_tokens(self) -> int:
        return self.cache_creation_input_tokens - self.ephemeral_1h_input_tokens


def cached_input(request: MessagesRequest, cache: set[str]) -> InputUsage:
    """The prompt's usage against ``cache`` (the prefixes seen so far), updating it."""
    total = 0
    digest = hashlib.sha256(request.model.encode())
    # (prefix tokens, prefix key, lifetime) of each breakpoint long enough to cache.
    breakpoints: list[tuple[int, str, str]] = []
    for piece in _pieces(request):
        total += piece.tokens
        digest.update(orjson.dumps(piece.content, option=orjson.OPT_SORT_KEYS))
        if piece.ttl is not None and total >= request.spec.min_cache_tokens:
            breakpoints.append((total, digest.copy().hexdigest(), piece.ttl))
    read = max((tokens for tokens, key, _ in breakpoints if key in cache), default=0)
    hour = max((t for t, _, ttl in breakpoints if ttl == "1h" and t > read), default=read)
    last = max(breakpoints[-1][0], read) if breakpoints else 0
    cache.update(key for _, key, _ in breakpoints)
    return InputUsage(total - last, last - read, read, hour - read)
