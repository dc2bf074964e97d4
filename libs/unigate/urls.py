"""What a channel's ``base_url`` may be: an absolute http(s) URL with a host (ws(s) too for
a provider reached over WebSocket, as iFlytek Spark is: its own docs give ``wss://`` URLs).

Checked where a channel is written (auth's AdminService, the CLI) and again by the relay
before a call, so that a bad one stored earlier fails that call cleanly."""

from __future__ import annotations

from urllib.parse import urlsplit

_HTTP = ("http", "https")
_WEB_SOCKET = (*_HTTP, "ws", "wss")


def base_url_problem(url: str, *, websocket: bool = False) -> str | None:
    """Why ``url`` cannot be a channel's base URL, or None when it can ("" means the type's
    default). ``websocket``: the channel's provider speaks WebSocket, so ws:// and wss:// are
    its URLs too."""
    if not url:
        return None
    if any(c.isspace() or not c.isprintable() for c in url):
        return "base_url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "base_url is not a valid URL"
    if parts.scheme.lower() not in (_WEB_SOCKET if websocket else _HTTP):
        return "base_url must be an http:// or https:// URL" + (
            " (or ws:// or wss://)" if websocket else ""
        )
    if not parts.hostname:
        return "base_url must name a host"
    return None
