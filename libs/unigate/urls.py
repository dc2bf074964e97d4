"""What a channel's ``base_url`` may be: an absolute http(s) URL with a host.

Checked where a channel is written (auth's AdminService, the CLI) and again by the relay
before a call, so that a bad one stored earlier fails that call cleanly."""

from __future__ import annotations

from urllib.parse import urlsplit


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a channel's base URL, or None when it can ("" means the type's
    default)."""
    if not url:
        return None
    if any(c.isspace() or not c.isprintable() for c in url):
        return "base_url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "base_url is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "base_url must be an http:// or https:// URL"
    if not parts.hostname:
        return "base_url must name a host"
    return None
