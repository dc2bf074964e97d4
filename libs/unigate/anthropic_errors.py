"""Anthropic's error types and the HTTP status each stands for (Anthropic's "Errors" page):
the one table both the gateway (errors it shows on ``/v1/messages``) and the relay (errors
Anthropic, Bedrock's and Vertex's Claude send it) read.

An Anthropic error is ``{"type": "error", "error": {"type", "message"}}``; inside a stream it
is an ``error`` event of the same shape, sent after the 200, so its status is known only
through its type.
"""

from __future__ import annotations

from typing import Final

STATUS_OF_TYPE: Final[dict[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
TYPE_OF_STATUS: Final[dict[int, str]] = {status: etype for etype, status in STATUS_OF_TYPE.items()}


def status_of_type(etype: str) -> int:
    """The HTTP status an Anthropic error type stands for (500 for a type not listed)."""
    return STATUS_OF_TYPE.get(etype, 500)


def type_of_status(status: int) -> str:
    """Anthropic's error type for an HTTP status: the listed one, else the client's
    ``invalid_request_error`` for other 4xx and ``api_error`` for the rest."""
    if status in TYPE_OF_STATUS:
        return TYPE_OF_STATUS[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"
