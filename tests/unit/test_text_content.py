"""The text of a text-only chat content, and which refusal applies to the rest."""

from __future__ import annotations

import pytest

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
