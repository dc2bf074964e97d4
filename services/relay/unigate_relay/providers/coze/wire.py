"""Coze's v3 chat API on the wire.

Reference: Coze OpenAPI "Create a chat" (``POST https://api.coze.com/v3/chat``, or
``api.coze.cn``; ``Authorization: Bearer <personal access token>``): ``bot_id``, ``user_id``,
``stream``, ``auto_save_history``, ``additional_messages`` (``role`` ``user`` or
``assistant``, ``type`` ``question`` / ``answer``, ``content``, ``content_type`` ``text``).
The bot is the model (One API: the model name is the bot id, a ``bot-`` prefix removed). A
bot brings its own persona, model and plugins, so there is no system role and no client-side
tools; such requests are refused rather than silently changed.

unigate always streams from Coze (``stream: true``, ``auto_save_history: false``: the
client sends the whole history): a non-streamed v3 chat only starts the chat and must be
polled, with history saved on Coze's side, for an answer the stream gives at once.
"""

from __future__ import annotations

from typing import Any, Final

from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

DEFAULT_BASE_URL: Final = "https://api.coze.com"
CHAT_PATH: Final = "/v3/chat"
DEFAULT_USER: Final = "unigate"


class Unsupported(ValueError):
    """A request Coze's chat API cannot express."""


def _text(content: Any, where: str) -> str:
    try:
        return text_only(content)
    except NonTextPart:
        raise Unsupported(f"Coze bots take text only at {where}.") from None
    except NotContent:
        raise Unsupported(f"Invalid content at {where}.") from None


def bot_id(model: str) -> str:
    return model.removeprefix("bot-")


def chat_body(chat: dict[str, Any], model: str, config: dict[str, Any]) -> dict[str, Any]:
    """The ``/v3/chat`` body for an OpenAI chat request."""
    if chat.get("tools") or chat.get("functions"):
        raise Unsupported("Coze bots call their own plugins; `tools` cannot be sent to a bot.")
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unsupported("`messages` must be a non-empty array.")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            raise Unsupported(
                f"Coze bots take their instructions from the bot's persona; {where} is a "
                f"`{role}` message, which Coze has no role for."
            )
        if role not in ("user", "assistant"):
            raise Unsupported(f"Coze has no `{role}` role ({where}).")
        text = _text(message.get("content"), where)
        if not text:
            continue
        out.append(
            {
                "role": role,
                "type": "question" if role == "user" else "answer",
                "content": text,
                "content_type": "text",
            }
        )
    if not out or out[-1]["role"] != "user":
        raise Unsupported("The conversation must end with a user message for a Coze bot.")
    user = config.get("user_id") or chat.get("user") or DEFAULT_USER
    return {
        "bot_id": bot_id(model),
        "user_id": str(user),
        "stream": True,
        "auto_save_history": False,
        "additional_messages": out,
    }
