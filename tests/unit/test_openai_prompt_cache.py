"""The OpenAI simulator's automatic prompt caching: prompts of 1,024+ tokens are cached, a
later prompt with the same beginning reads the longest cached prefix in 128-token steps."""

from __future__ import annotations

import openai

from unigate_sim.openai.prompt_cache import PromptCache, prompt_token_ids
from unigate_sim.openai.tokens import count_tokens, encode

# 1,100 tokens exactly: " x" is one token in o200k_base.
LONG = "x" + " x" * 1099


def test_prefixes_are_read_in_128_token_steps_from_1024() -> None:
    assert count_tokens(LONG) == 1100
    cache = PromptCache()
    short = encode("x" + " x" * 999)
    assert cache.read_and_write(short) == 0
    assert cache.read_and_write(short) == 0  # under 1,024 tokens: never cached
    first = encode(LONG)
    assert cache.read_and_write(first) == 0
    assert cache.read_and_write(first) == 1024  # 1,100 shared: the 1,024 step
    longer = first + encode(" y" * 300)
    assert cache.read_and_write(longer) == 1024  # only its first 1,100 tokens were seen
    assert cache.read_and_write(longer) == 1024 + 2 * 128  # 1,400 tokens: up to 1,280
    # A different beginning shares nothing, however long.
    assert cache.read_and_write(encode("y" + " x" * 1500)) == 0


def test_a_conversation_reads_its_history_back(client: openai.OpenAI) -> None:
    system = {"role": "system", "content": "You answer in one word. " + LONG}
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=[system, {"role": "user", "content": "one"}]
    )
    second = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            system,
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "two"},
        ],
    )
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024 and (cached - 1024) % 128 == 0
    assert cached <= second.usage.prompt_tokens

    # Tool definitions come first in the prefix: the same messages with tools read nothing.
    cache = PromptCache()
    messages = [system, {"role": "user", "content": "one"}]
    tools = [{"name": "f", "parameters": {"type": "object"}}]
    assert cache.read_and_write(prompt_token_ids(messages)) == 0
    assert cache.read_and_write(prompt_token_ids(messages, tools)) == 0
    assert cache.read_and_write(prompt_token_ids(messages, tools)) == 1024
