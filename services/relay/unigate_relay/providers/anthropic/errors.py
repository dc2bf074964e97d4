"""Anthropic's errors, mapped for failover and for the client.

Reference: Anthropic's "Errors" page; its error types and their statuses are the table in
``unigate.anthropic_errors`` (shared with the gateway's ``/v1/messages``). A stream may end
in an ``error`` event of the same shape after the 200: its type gives its status.

Problems of the channel's account (its key refused, no permission, no credit — Anthropic
says "Your credit balance is too low" with a 400) are fatal, so the channel is disabled;
429, 5xx and 529 are retryable on another channel; everything else is the client's.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from unigate.anthropic_errors import status_of_type
from unigate.v1 import relay_pb2
from unigate_relay.providers.anthropic.wire import ConversionError
from unigate_relay.providers.base import (
    client_mistake,
    credentials_rejected,
    error_from_upstream,
    quota_exhausted,
    relay_error,
    scrub,
)

_CREDIT_PHRASES: Final = ("credit balance is too low", "billing")


def _error_object(body: bytes) -> tuple[str, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", body[:500].decode(errors="replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("type") or ""), str(error.get("message") or "")
    return "", ""


def conversion_error(exc: ConversionError) -> relay_pb2.RelayError:
    """The client's 400 for a request that cannot be expressed in Anthropic's protocol."""
    return client_mistake(exc.message, code="invalid_request", param=exc.param)


def anthropic_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """The relay's error for an Anthropic HTTP error answer."""
    etype, message = _error_object(body)
    message = scrub(message, secrets)
    if status == 403 or etype == "permission_error":
        return credentials_rejected(
            status, "The upstream provider refused this channel's credentials: " + message
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
    return anthropic_error(status_of_type(etype), body, headers, secrets)
