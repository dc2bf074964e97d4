"""Anthropic's request headers: the ``x-api-key`` (401 ``authentication_error`` when missing
or wrong) and the ``anthropic-version`` every request must name (400 otherwise; Anthropic's
"Versions" page lists 2023-06-01 and 2023-01-01)."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from unigate_sim.anthropic.errors import AnthropicError, invalid

VERSIONS: Final = frozenset({"2023-06-01", "2023-01-01"})


def authenticate(request: Request, api_keys: frozenset[str]) -> None:
    """Raise Anthropic's error unless the request has a known key and a valid version."""
    key = request.headers.get("x-api-key")
    if not key:
        raise AnthropicError("authentication_error", "x-api-key header is required")
    if key not in api_keys:
        raise AnthropicError("authentication_error", "invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in VERSIONS:
        raise invalid(f"anthropic-version: invalid version {version!r}")
