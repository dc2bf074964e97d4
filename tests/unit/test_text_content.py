"""The text of a text-only chat content, and which refusal applies to the rest; each family
that reads it, with its own refusal's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from unigate_relay.providers.baidu import convert as baidu
from unigate_relay.providers.cohere import request as cohere
from unigate_relay.providers.dashscope import convert as dashscope
from unigate_relay.providers.gemini import request as gemini
from unigate_relay.providers.hunyuan import convert as hunyuan
from unigate_relay.providers.spark import convert as spark
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only


def test_strings_and_text_parts() -> None:
    assert text_only("hi") == "hi"
    assert text_only([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert text_only([{"type": "text"}]) == ""
    assert text_only(None, none_is_empty=True) == ""


def test_refusals() -> None:
    with pytest.raises(NonTextPart):
        text_only([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}])
    with pytest.raises(NonTextPart):
        text_only(["a"])
    for bad in (None, 3, {"type": "text", "text": "a"}):
        with pytest.raises(NotContent):
            text_only(bad)


# Every family that reads text-only content through text_only: (the request body builder,
# its refusal's exception type, the words of its refusal of a non-text part).
FAMILIES: list[tuple[str, Callable[[dict[str, Any]], Any], type[Exception], str]] = [
    ("baidu", lambda r: baidu.chat_body(r, stream=False), baidu.Unsupported, "ERNIE models"),
    (
        "hunyuan",
        lambda r: hunyuan.chat_body(r, "hunyuan-lite", stream=False),
        hunyuan.Unsupported,
        "This Hunyuan relay takes text only",
    ),
    (
        "dashscope",
        lambda r: dashscope.generation_body(r, "qwen-plus", stream=False),
        dashscope.Unsupported,
        "The DashScope text models take text only",
    ),
    (
        "spark",
        lambda r: spark.request_frame(r, app_id="app", domain="4.0Ultra"),
        spark.Unsupported,
        "Spark's chat API takes text only (assistant message)",
    ),
    (
        "cohere",
        lambda r: cohere.chat_body(r, "command-r", stream=False),
        cohere.Unsupported,
        "Only text content is supported in a assistant message",
    ),
    ("gemini", gemini.chat_request, gemini.InvalidRequest, "Only text parts are allowed"),
]


def conversation(assistant: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": "again"},
        ],
    }


@pytest.mark.parametrize(("name", "build", "refusal", "words"), FAMILIES)
def test_each_family_reads_text_parts_concatenated(
    name: str, build: Callable[[dict[str, Any]], Any], refusal: type[Exception], words: str
) -> None:
    """Text parts are one text as the client wrote it (Baidu, Hunyuan and DashScope had put
    a line break between parts); a missing content is empty text."""
    parts = [{"type": "text", "text": "first half, "}, {"type": "text", "text": "second half"}]
    sent = orjson.dumps(build(conversation(parts))).decode()
    assert "first half, second half" in sent, name
    build(conversation(None))


@pytest.mark.parametrize(("name", "build", "refusal", "words"), FAMILIES)
@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "x"}}],
        # Not even a part: Baidu, Hunyuan and DashScope had dropped it without a word.
        [{"type": "text", "text": "see"}, "a bare string"],
    ],
)
def test_each_family_refuses_a_non_text_part_in_its_own_words(
    name: str,
    build: Callable[[dict[str, Any]], Any],
    refusal: type[Exception],
    words: str,
    content: list[Any],
) -> None:
    with pytest.raises(refusal) as refused:
        build(conversation(content))
    assert words in str(refused.value), name
    if isinstance(refused.value, gemini.InvalidRequest):
        assert refused.value.param.endswith("content[1]")


@pytest.mark.parametrize(("name", "build", "refusal", "words"), FAMILIES)
def test_each_family_refuses_content_that_is_no_content(
    name: str, build: Callable[[dict[str, Any]], Any], refusal: type[Exception], words: str
) -> None:
    with pytest.raises(refusal):
        build(conversation({"type": "text", "text": "an object, not a list"}))


def test_refusal_parts_only_where_asked() -> None:
    parts = [{"type": "text", "text": "I "}, {"type": "refusal", "refusal": "cannot"}]
    assert text_only(parts, refusals=True) == "I cannot"
    with pytest.raises(NonTextPart) as refused:
        text_only(parts)
    assert refused.value.index == 1
