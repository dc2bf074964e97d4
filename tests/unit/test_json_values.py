"""Reading a provider's reported counts: never negative, never a boolean, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.response import usage_from_anthropic
from unigate_relay.providers.bedrock.converse_reply import converse_usage
from unigate_relay.providers.json_values import count, obj
from unigate_relay.providers.openai.usage import usage_object


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.9, 12),
        (0, 0),
        (-5, 0),
        (-0.5, 0),
        (True, 0),
        ("12", 0),
        (None, 0),
        (float("inf"), 0),
        (float("nan"), 0),
        ([3], 0),
    ],
)
def test_count(value: Any, expected: int) -> None:
    assert count(value) == expected


def test_obj() -> None:
    assert obj({"a": 1}) == {"a": 1}
    assert obj([1]) == {} and obj(None) == {} and obj("x") == {}


@pytest.mark.parametrize(
    "usage",
    [
        lambda n: usage_object({"prompt_tokens": n, "completion_tokens": 5}),
        lambda n: usage_from_anthropic({"input_tokens": n, "output_tokens": 5}),
        lambda n: converse_usage({"inputTokens": n, "outputTokens": 5}),
    ],
)
def test_a_negative_or_boolean_report_bills_nothing_for_it(usage: Any) -> None:
    """A provider that reports -100 prompt tokens must not credit the client (the OpenAI and
    Anthropic readers took negatives as they came, Bedrock's took ``true`` as 1)."""
    for bad in (-100, True):
        read: common_pb2.Usage = usage(bad)
        assert (read.prompt_tokens, read.completion_tokens, read.total_tokens) == (0, 5, 5)
