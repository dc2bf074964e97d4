"""The Responses API's input items, in one place for the gateway (which stores them and lists
them at ``GET /v1/responses/{id}/input_items``) and the relay (which replays a stored
conversation into a later request).

Per OpenAI's Responses reference: ``input`` is a string (one user message) or an array of
items; an item without a ``type`` but with a ``role`` is a message (the "easy" input
message); a message's ``content`` is a string or an array of content parts. Stored items get
an ``id`` when they have none, as OpenAI's ``input_items`` list shows every item with one.
"""

from __future__ import annotations

import secrets
from typing import Any

JSONObject = dict[str, Any]

# An item's id prefix by its type, as OpenAI names them.
_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def new_id(prefix: str) -> str:
    """A fresh ``<prefix>_…`` id (48 hex digits, as OpenAI's are long and opaque)."""
    return f"{prefix}_{secrets.token_hex(24)}"


def _message_content(content: Any, role: str) -> list[JSONObject]:
    """A message's content as parts (a string becomes one text part of the role's kind)."""
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        part: JSONObject = {"type": kind, "text": content}
        if kind == "output_text":
            part["annotations"] = []
        return [part]
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def input_items(value: Any) -> list[JSONObject]:
    """The request's ``input`` as explicit items, each with its ``type`` and an ``id``."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        return []
    items: list[JSONObject] = []
    for raw in value:
        if not isinstance(raw, dict):
            continue
        item = dict(raw)
        kind = item.setdefault("type", "message")
        if kind == "message":
            role = str(item.get("role") or "user")
            item["role"] = role
            item["content"] = _message_content(item.get("content"), role)
            item.setdefault("status", "completed")
        if not isinstance(item.get("id"), str):
            item["id"] = new_id(_PREFIXES.get(str(kind), "item"))
        items.append(item)
    return items


def replayable(items: list[JSONObject]) -> list[JSONObject]:
    """Items of an earlier turn as they can be sent again as input: reasoning items carry
    nothing a provider accepts back without its own encrypted state, so they are left out."""
    return [item for item in items if item.get("type") != "reasoning"]
