"""Content logging: what of a request's and an answer's bodies may be kept.

Secrets never are: the request's headers are not kept at all (the key travels there), the
caller's own key is replaced wherever it appears in a body, and so is the value of any JSON
member whose name says it holds a credential (``api_key``, ``authorization``, ``password``,
``secret``, ``access_token``, ...). Each body is then cut at the cap, on a character
boundary."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import orjson

REDACTED = "[redacted]"
DEFAULT_MAX_BYTES = 16 * 1024
# Both bodies of a page of logs with content (billing's CONTENT_PAGE_SIZE rows) stay within
# gRPC's 4 MiB message limit, and one RequestContent within NATS's 1 MiB.
MAX_MAX_BYTES = 128 * 1024
DEFAULT_RETENTION_DAYS = 7
_SECRET_NAME = re.compile(
    r"(api[-_]?key|authorization|password|passwd|secret|access[-_]?token|refresh[-_]?token"
    r"|x-api-key|x-goog-api-key|credential)",
    re.IGNORECASE,
)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_NAME.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def redact(body: bytes, api_key: str, max_bytes: int) -> tuple[str, bool]:
    """``body`` as text fit to store: credentials replaced, cut at ``max_bytes`` of UTF-8;
    and whether it was cut."""
    text = body.decode("utf-8", errors="replace")
    if text[:1] in ("{", "["):
        # Not JSON after all (a stream, a form): the key is still replaced below.
        with contextlib.suppress(orjson.JSONDecodeError):
            text = orjson.dumps(_scrub(orjson.loads(body))).decode()
    if api_key:
        text = text.replace(api_key, REDACTED)
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), True


def wants_content(
    token_id: int, group: str, tokens_option: str | None, groups_option: str | None
) -> bool:
    """Whether content logging is on for this key (ContentLogTokens: key ids) or its group
    (ContentLogGroups: group names); both comma-separated, empty by default (off)."""
    tokens = {t.strip() for t in (tokens_option or "").split(",") if t.strip()}
    groups = {g.strip() for g in (groups_option or "").split(",") if g.strip()}
    return str(token_id) in tokens or group in groups
