"""Anthropic's errors, mapped for failover and for the client.

Reference: Anthropic's "Errors" page: ``{"type": "error", "error": {"type", "message"}}`` with
400 invalid_request_error, 401 authentication_error, 402 billing_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500
api_error, 504 timeout_error and 529 overloaded_error; a stream may end in an ``error`` event
of the same shape after the 200.

Problems of the channel's account (its key refused, no permission, no credit — Anthropic
says "Your credit balance is too low" with a 400) are fatal, so the channel is disabled;
429, 5xx and 529 are retryable on another channel; everything else is the client's.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    error_from_upstream,
    quota_exhausted,
    relay_error,
    scrub,
)

_CREDIT_PHRASES: Final = ("credit balance is too low", "billing")
# The status an Anthropic error type stands for, for errors that arrive inside a stream.
_STATUS_OF_TYPE: Final[dict[str, int]] = {
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


def _error_object(body: bytes) -> tuple[str, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", body[:500].decode(errors="replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("type") or ""), str(error.get("message") or "")
    return "", ""


def anthropic_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """The relay's error for an Anthropic HTTP error answer."""
    etype, message = _error_object(body)
    message = scrub(message, secrets)
    if status == 403 or etype == "permission_error":
        return relay_error(
            502,
            "The upstream provider refused this channel's credentials: " + message,
            code="upstream_auth_failed",
            retryable=True,
            upstream_status=status,
            fatal=True,
        )
    if status == 402 or (status == 400 and any(p in message.lower() for p in _CREDIT_PHRASES)):
        return quota_exhausted(status)
    if status == 529 or etype == "overloaded_error":
        return relay_error(
            503,
            message or "The upstream provider is overloaded.",
            type="overloaded_error",
            code="overloaded",
            retryable=True,
            upstream_status=status,
        )
    return error_from_upstream(status, body, headers, secrets)


def stream_error(error: dict[str, Any], secrets: list[str]) -> relay_pb2.RelayError:
    """The relay's error for an ``error`` event inside a stream (sent after a 200)."""
    etype = str(error.get("type") or "api_error")
    body = orjson.dumps({"type": "error", "error": error})
    headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
    return anthropic_error(_STATUS_OF_TYPE.get(etype, 500), body, headers, secrets)
