"""The text of an OpenAI chat message whose content may only be text.

Families that take plain strings (Baidu ERNIE, DashScope, Hunyuan, Spark, Cohere's system,
assistant and tool turns, Coze, Replicate, DeepL, PaLM, Bedrock Converse's and Gemini's system,
tool and assistant turns) read ``content`` the same way: a string as is, a list of ``text``
parts concatenated (as OpenAI reads them, and One API's ``StringContent``), any other part
refused — an image a family cannot take is the client's 400, never silently dropped. What
differs is only how each words the refusal, so this walks the content once and says which
refusal applies; each family words its own error.
"""

from __future__ import annotations

from typing import Any


class NonTextPart(ValueError):
    """The content has a part that is not text (an image, audio, a file, ... or not even an
    object): ``index`` is its place in the list."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class NotContent(ValueError):
    """The content is neither a string nor a list of parts."""


def text_only(content: Any, *, none_is_empty: bool = False, refusals: bool = False) -> str:
    """The content's text; raises NonTextPart or NotContent (a missing content is NotContent
    unless ``none_is_empty``). With ``refusals``, an assistant's ``refusal`` parts count as
    text (a family that replays the refusal as words)."""
    if isinstance(content, str):
        return content
    if content is None and none_is_empty:
        return ""
    if not isinstance(content, list):
        raise NotContent
    kinds = ("text", "refusal") if refusals else ("text",)
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise NonTextPart(i)
        texts.append(str(part.get(kind) or ""))
    return "".join(texts)
