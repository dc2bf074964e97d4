"""Anthropic's ``usage`` as the ledger's: prompt-cache writes split by lifetime (the
``cache_creation`` breakdown), whole and streamed, and kept when a stream breaks off."""

from __future__ import annotations

from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.response import usage_from_anthropic
from unigate_relay.providers.anthropic.stream import StreamState, with_reported_prompt


def writes(usage: common_pb2.Usage) -> tuple[int, int, int, int]:
    return (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
    )


def test_the_breakdown_splits_cache_writes_by_lifetime() -> None:
    raw: dict[str, Any] = {
        "input_tokens": 5,
        "cache_read_input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
        "output_tokens": 7,
    }
    usage = usage_from_anthropic(raw)
    assert writes(usage) == (45, 10, 10, 20)
    assert (usage.completion_tokens, usage.total_tokens) == (7, 52)


def test_writes_without_a_breakdown_are_five_minute_writes() -> None:
    raw: dict[str, Any] = {"input_tokens": 5, "cache_creation_input_tokens": 30, "output_tokens": 1}
    assert writes(usage_from_anthropic(raw)) == (35, 0, 30, 0)
    raw["cache_creation"] = None
    assert writes(usage_from_anthropic(raw)) == (35, 0, 30, 0)


def test_the_total_and_the_breakdown_disagreeing() -> None:
    split = {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 6}
    # No total: the breakdown's sum is it.
    assert writes(usage_from_anthropic({"cache_creation": split})) == (10, 0, 4, 6)
    # More than the breakdown says: the rest are 5-minute writes.
    more = {"cache_creation_input_tokens": 15, "cache_creation": split}
    assert writes(usage_from_anthropic(more)) == (15, 0, 9, 6)
    # Less: never more 1-hour writes than writes.
    less = {"cache_creation_input_tokens": 5, "cache_creation": split}
    assert writes(usage_from_anthropic(less)) == (5, 0, 0, 5)


def test_a_stream_keeps_the_breakdown_of_message_start() -> None:
    state = StreamState()
    start_usage = {
        "input_tokens": 3,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
        "output_tokens": 1,
    }
    state.observe({"type": "message_start", "message": {"usage": start_usage}})
    # message_delta repeats the cumulative counts without the breakdown.
    delta_usage = {
        "input_tokens": 3,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 100,
        "output_tokens": 9,
    }
    state.observe({"type": "message_delta", "delta": {}, "usage": delta_usage})
    usage = state.usage()
    assert usage is not None
    assert writes(usage) == (103, 0, 40, 60) and usage.completion_tokens == 9

    # Broken off: the output is counted locally, the reported prompt and its writes stay.
    counted = common_pb2.Usage(prompt_tokens=50, completion_tokens=12, estimated=True)
    with_reported_prompt(counted, usage)
    assert writes(counted) == (103, 0, 40, 60)
    assert (counted.completion_tokens, counted.total_tokens) == (12, 115)
