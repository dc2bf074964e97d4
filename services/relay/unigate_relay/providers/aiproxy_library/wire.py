"""AI Proxy Library's ask API on the wire.

Reference: One API's adaptor (``relay/adaptor/aiproxy``, written after aiproxy.io's
"使用已经定制好的知识库进行对话问答", docs.aiproxy.io/dev/library) and aiproxy.io's own
library clients: ``POST {base}/api/library/ask`` (default ``https://api.aiproxy.io``) with
``Authorization: Bearer <key>`` and the body ``{"model", "query", "libraryId", "stream"}``.
The library answers one question, so ``query`` is the text of the conversation's last
message (One API's rule; earlier turns cannot be sent) and ``libraryId`` the channel
config's ``library_id``. An answer is ``{"success", "answer", "documents": [{"title",
"url"}]}``; a stream is SSE ``data:`` lines of ``{"content", "finish", "model",
"documents"}``. The documents the answer drew on are appended to it as a numbered Markdown
reference list, in One API's words (:func:`references`).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

DEFAULT_BASE_URL: Final = "https://api.aiproxy.io"
ASK_PATH: Final = "/api/library/ask"
MISSING_LIBRARY: Final = (
    'The AI Proxy Library channel needs its library id in the config: {"library_id": "..."}.'
)
# One API's heading of the reference list ("reference documents").
REFERENCES_HEADING: Final = "\n\n参考文档\uff1a\n"  # the colon is a full-width one


class Unsupported(ValueError):
    """A request the library's ask API cannot express."""


def library_id(config_json: str) -> str:
    """The channel config's ``library_id`` (a string, or a whole number as its digits);
    "" when there is none."""
    try:
        config: Any = orjson.loads(config_json) if config_json else {}
    except orjson.JSONDecodeError:
        return ""
    value = config.get("library_id") if isinstance(config, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def ask_body(chat: dict[str, Any], model: str, library: str, *, stream: bool) -> dict[str, Any]:
    """The ``/api/library/ask`` body for an OpenAI chat request."""
    if chat.get("tools") or chat.get("functions"):
        raise Unsupported(
            "AI Proxy Library answers from its knowledge base; `tools` cannot be sent to it."
        )
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unsupported("`messages` must be a non-empty array.")
    where = f"messages[{len(messages) - 1}]"
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        raise Unsupported(
            f"AI Proxy Library answers a user's question: {where} must be a `user` message."
        )
    try:
        query = text_only(last.get("content"))
    except NonTextPart:
        raise Unsupported(f"AI Proxy Library takes text only at {where}.") from None
    except NotContent:
        raise Unsupported(f"Invalid content at {where}.") from None
    if not query.strip():
        raise Unsupported(f"{where} has no question to ask.")
    return {"model": model, "query": query, "libraryId": library, "stream": stream}


def references(documents: Any) -> str:
    """The documents an answer drew on as One API appends them to it: a heading and one
    numbered ``[title](url)`` line each; "" when there are none."""
    found = [d for d in documents if isinstance(d, dict)] if isinstance(documents, list) else []
    if not found:
        return ""
    lines = (
        f"{i}. [{d.get('title') or ''}]({d.get('url') or ''})\n" for i, d in enumerate(found, 1)
    )
    return REFERENCES_HEADING + "".join(lines)
