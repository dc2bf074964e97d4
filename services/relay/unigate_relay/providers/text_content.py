"""The text of an OpenAI chat message whose content may only be text.

Families that take plain strings (Coze, Replicate, DeepL, Bedrock Converse's system, tool and
assistant turns) read ``content`` the same way: a string as is, a list of ``text`` parts
joined. What differs is only how each refuses the rest, so this walks the content once and
says which refusal applies; each family words its own error.
"""

from __future__ import annotations

from typing import Any


class NonTextPart(ValueError):
    """The content has a part that is not text (an image, audio, a file, ...)."""


class NotContent(ValueError):
    """The content is neither a string nor a list of parts."""


def text_only(content: Any, *, none_is_empty: bool = False) -> str:
    """The content's text; raises NonTextPart or NotContent (a missing content is NotContent
    unless ``none_is_empty``)."""
    if isinstance(content, str):
        return content
    if content is None and none_is_empty:
        return ""
    if not isinstance(content, list):
        raise NotContent
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            raise NonTextPart
        texts.append(str(part.get("text") or ""))
    return "".join(texts)
