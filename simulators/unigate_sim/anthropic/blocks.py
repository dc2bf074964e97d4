"""Content block checks, as Anthropic's Messages API makes them (its "Messages" reference:
the block types each role may send, their fields, image and document sources).

Errors name the offending field by its path (``messages.0.content.1.source.media_type``)
with pydantic's wording, as Anthropic's do; unknown fields are "Extra inputs are not
permitted".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, Final

from unigate_sim.anthropic.errors import invalid
from unigate_sim.openai.json_types import JSONObject

IMAGE_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_ID: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_SIGNING_KEY: Final = b"unigate-sim-anthropic-thinking"

_BLOCK_FIELDS: Final[dict[str, frozenset[str]]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
USER_BLOCKS: Final = ("text", "image", "document", "tool_result")
ASSISTANT_BLOCKS: Final = ("text", "tool_use", "thinking", "redacted_thinking")


def thinking_signature(thinking: str) -> str:
    """The signature the simulator gives a thinking block; a block sent back must carry it
    unchanged, as Anthropic verifies its own signatures."""
    digest = hashlib.sha256(_SIGNING_KEY + thinking.encode()).digest()
    return base64.b64encode(digest).decode()


def as_object(value: Any, path: str) -> JSONObject:
    if not isinstance(value, dict):
        raise invalid(f"{path}: Input should be a valid dictionary")
    return value


def as_string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{path}: Input should be a valid string")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"{path}: Input should be a valid list")
    return value


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def required(obj: JSONObject, key: str, path: str = "") -> Any:
    """``obj[key]``, or pydantic's "Field required" (``path`` "" for the top level)."""
    if key not in obj:
        raise invalid(f"{_at(path, key)}: Field required")
    return obj[key]


def no_extra(obj: JSONObject, allowed: frozenset[str], path: str = "") -> None:
    for key in obj:
        if key not in allowed:
            raise invalid(f"{_at(path, key)}: Extra inputs are not permitted")


def cache_control(obj: JSONObject, path: str) -> bool:
    """Whether the block is a cache breakpoint (checking the ``cache_control`` shape)."""
    value = obj.get("cache_control")
    if value is None:
        return False
    control = as_object(value, f"{path}.cache_control")
    if control.get("type") != "ephemeral":
        raise invalid(f"{path}.cache_control.type: Input should be 'ephemeral'")
    no_extra(control, frozenset({"type", "ttl"}), f"{path}.cache_control")
    if control.get("ttl") not in (None, "5m", "1h"):
        raise invalid(f"{path}.cache_control.ttl: Input should be '5m' or '1h'")
    return True


def cache_ttl(obj: JSONObject) -> str | None:
    """The lifetime of a checked block's cache entry: ``"1h"``, or ``"5m"`` (also when
    ``ttl`` is left out, the default); None if the block is no breakpoint."""
    control = obj.get("cache_control")
    if control is None:
        return None
    return "1h" if control.get("ttl") == "1h" else "5m"


def _check_text(block: JSONObject, path: str) -> None:
    text = as_string(required(block, "text", path), f"{path}.text")
    if not text:
        raise invalid("messages: text content blocks must be non-empty")
    if not text.strip():
        raise invalid(f"{path}.text: text content blocks must contain non-whitespace text")


def _check_base64(data: Any, path: str) -> None:
    try:
        base64.b64decode(as_string(data, path), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}: invalid base64 data") from None


def _check_image(block: JSONObject, path: str) -> None:
    source = as_object(required(block, "source", path), f"{path}.source")
    kind = required(source, "type", f"{path}.source")
    if kind == "base64":
        no_extra(source, frozenset({"type", "media_type", "data"}), f"{path}.source")
        media = required(source, "media_type", f"{path}.source")
        if media not in IMAGE_TYPES:
            allowed = ", ".join(f"'{t}'" for t in IMAGE_TYPES)
            raise invalid(f"{path}.source.base64.media_type: Input should be {allowed}")
        _check_base64(required(source, "data", f"{path}.source"), f"{path}.source.base64.data")
    elif kind == "url":
        no_extra(source, frozenset({"type", "url"}), f"{path}.source")
        url = as_string(required(source, "url", f"{path}.source"), f"{path}.source.url")
        if not url.startswith(("http://", "https://")):
            raise invalid(f"{path}.source.url: Only HTTP(S) URLs are supported")
    else:
        raise invalid(f"{path}.source.type: Input should be 'base64' or 'url'")


def _check_document(block: JSONObject, path: str) -> None:
    source = as_object(required(block, "source", path), f"{path}.source")
    kind = required(source, "type", f"{path}.source")
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{path}.source.base64.media_type: Input should be 'application/pdf'")
        _check_base64(required(source, "data", f"{path}.source"), f"{path}.source.base64.data")
    elif kind == "text":
        if source.get("media_type") != "text/plain":
            raise invalid(f"{path}.source.text.media_type: Input should be 'text/plain'")
        as_string(required(source, "data", f"{path}.source"), f"{path}.source.text.data")
    elif kind == "url":
        as_string(required(source, "url", f"{path}.source"), f"{path}.source.url")
    else:
        raise invalid(f"{path}.source.type: Input should be 'base64', 'text' or 'url'")


def _check_tool_result(block: JSONObject, path: str) -> None:
    as_string(required(block, "tool_use_id", path), f"{path}.tool_use_id")
    content = block.get("content")
    if isinstance(content, list):
        for k, inner in enumerate(content):
            inner_path = f"{path}.content.{k}"
            inner = as_object(inner, inner_path)
            if inner.get("type") not in ("text", "image"):
                raise invalid(f"{inner_path}.type: Input should be 'text' or 'image'")
            check_block(inner, inner_path, ("text", "image"))
    elif content is not None:
        as_string(content, f"{path}.content")
    if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
        raise invalid(f"{path}.is_error: Input should be a valid boolean")


def _check_tool_use(block: JSONObject, path: str) -> None:
    tool_id = as_string(required(block, "id", path), f"{path}.id")
    if not _TOOL_ID.match(tool_id):
        raise invalid(f"{path}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
    as_string(required(block, "name", path), f"{path}.name")
    as_object(required(block, "input", path), f"{path}.input")


def _check_thinking(block: JSONObject, path: str) -> None:
    thinking = as_string(required(block, "thinking", path), f"{path}.thinking")
    signature = as_string(required(block, "signature", path), f"{path}.signature")
    if signature != thinking_signature(thinking):
        raise invalid(f"{path}: Invalid `signature` in `thinking` block")


def check_block(block: Any, path: str, allowed: tuple[str, ...]) -> JSONObject:
    """Check one content block of a role that may send the ``allowed`` block types."""
    obj = as_object(block, path)
    kind = required(obj, "type", path)
    if kind not in allowed:
        expected = ", ".join(f"'{k}'" for k in allowed)
        raise invalid(f"{path}.type: Input should be {expected}")
    no_extra(obj, _BLOCK_FIELDS[kind], path)
    cache_control(obj, path)
    if kind == "text":
        _check_text(obj, path)
    elif kind == "image":
        _check_image(obj, path)
    elif kind == "document":
        _check_document(obj, path)
    elif kind == "tool_result":
        _check_tool_result(obj, path)
    elif kind == "tool_use":
        _check_tool_use(obj, path)
    elif kind == "thinking":
        _check_thinking(obj, path)
    else:
        as_string(required(obj, "data", path), f"{path}.data")
    return obj


def blocks_of(content: Any, path: str, allowed: tuple[str, ...]) -> list[JSONObject]:
    """A message's content as checked blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    items = as_list(content, path)
    return [check_block(block, f"{path}.{k}", allowed) for k, block in enumerate(items)]
