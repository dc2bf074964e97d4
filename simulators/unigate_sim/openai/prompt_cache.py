"""OpenAI's automatic prompt caching, as its Prompt Caching guide describes it.

Every chat prompt of 1,024 tokens or more is cached as it is processed. A later prompt that
begins with the same tokens reads the longest cached prefix from the cache — counted from
1,024 tokens up in steps of 128 — and reports it as ``usage.prompt_tokens_details.
cached_tokens``. The prefix is the prompt in the order the model reads it: the tool
definitions, then the messages in turn, so a conversation that only appends messages reads
its whole history back. Entries belong to one organization (a simulator serves one); their
expiry after minutes of disuse is not simulated, being longer than any test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import encode, message_text

#: The shortest prompt that is cached, and the granularity of a cache hit beyond it.
MIN_CACHED_TOKENS: Final = 1024
CACHE_STEP: Final = 128


def prompt_token_ids(messages: Iterable[JSONObject], tools: Iterable[Any] = ()) -> list[int]:
    """The prompt as one token sequence, in reading order: tools, then each message's role
    and text. Only the prefix structure matters here; the count that usage reports is
    :func:`unigate_sim.openai.tokens.count_prompt_tokens`."""
    tool_list = list(tools)
    ids = encode(orjson.dumps(tool_list, option=orjson.OPT_SORT_KEYS).decode()) if tool_list else []
    for message in messages:
        ids += encode(f"<|{message.get('role', '')}|>{message_text(message)}<|end|>")
    return ids


class PromptCache:
    """The cached prefixes of the prompts seen, by digest, at every cacheable length."""

    def __init__(self) -> None:
        self._prefixes: set[bytes] = set()

    def read_and_write(self, tokens: Sequence[int]) -> int:
        """How many of ``tokens`` this prompt reads from the cache; the prompt's own
        cacheable prefixes are cached afterwards."""
        digests: list[bytes] = []
        running = hashlib.sha256()
        done = 0
        for end in range(MIN_CACHED_TOKENS, len(tokens) + 1, CACHE_STEP):
            running.update(b"".join(t.to_bytes(4, "little") for t in tokens[done:end]))
            done = end
            digests.append(running.copy().digest())
        hit = 0
        for index, digest in enumerate(digests):
            if digest not in self._prefixes:
                break
            hit = MIN_CACHED_TOKENS + index * CACHE_STEP
        self._prefixes.update(digests)
        return hit
