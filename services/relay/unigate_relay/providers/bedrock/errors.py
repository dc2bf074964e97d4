"""Bedrock's errors, mapped for failover and for the client.

Reference: AWS "InvokeModel" errors and "Common Errors": an HTTP error has ``{"message"}`` as
body and its type in the ``x-amzn-ErrorType`` header (``Type:namespace``). Credentials that
AWS refuses (``UnrecognizedClientException``, ``InvalidSignatureException``,
``IncompleteSignatureException``, ``AccessDeniedException``, ``ExpiredTokenException``) are
the channel's problem and fatal; throttling, model readiness, timeouts and service faults are
retryable on another channel; ``ValidationException`` and ``ResourceNotFoundException`` are
the client's. A stream's exception events use the same names in camelCase.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    provider_failed,
    rate_limited,
    relay_error,
    scrub,
)

_FATAL: Final = frozenset(
    {
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "incompletesignatureexception",
        "accessdeniedexception",
        "expiredtokenexception",
        "missingauthenticationtokenexception",
    }
)
_CLIENT: Final[dict[str, int]] = {
    "validationexception": 400,
    "resourcenotfoundexception": 404,
}
_THROTTLED: Final = frozenset(
    {"throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"}
)
# The HTTP status a stream exception stands for (for the upstream status of the error).
_STATUS_OF: Final[dict[str, int]] = {
    "throttlingexception": 429,
    "validationexception": 400,
    "modelstreamerrorexception": 424,
    "modelerrorexception": 424,
    "modeltimeoutexception": 408,
    "modelnotreadyexception": 429,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
}


def bedrock_error(
    kind: str, status: int, message: str, secrets: list[str], retry_after: float = 0.0
) -> relay_pb2.RelayError:
    """The relay's error for a Bedrock error of type ``kind`` (any case) with ``status``."""
    name = kind.lower()
    message = scrub(message, secrets) or f"upstream answered HTTP {status}"
    if name in _FATAL or (not name and status in (401, 403)):
        return credentials_rejected(
            status, f"AWS refused this channel's credentials ({kind or status}): {message}"
        )
    if name in _THROTTLED or (not name and status == 429):
        return rate_limited(message, upstream_status=status, retry_after=retry_after)
    client = _CLIENT.get(name)
    if client is not None or (not name and status in (400, 404, 413)):
        return relay_error(
            client or status,
            message,
            type="invalid_request_error",
            code=kind[:1].lower() + kind[1:] if kind else "",
            upstream_status=status,
        )
    return provider_failed(
        f"({kind or status}) {message}",
        status=503 if name in ("serviceunavailableexception", "modelnotreadyexception") else 502,
        upstream_status=status,
    )


def http_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """The relay's error for an HTTP error answer of the Bedrock runtime."""
    kind = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    message = ""
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("Message") or "")
        kind = kind or str(data.get("__type") or "").rsplit("#", 1)[-1]
    elif body:
        message = body[:500].decode(errors="replace").strip()
    retry_after = 0.0
    with contextlib.suppress(ValueError):
        retry_after = max(float(headers.get("retry-after", "0")), 0.0)
    return bedrock_error(kind, status, message, secrets, retry_after)


def stream_exception(kind: str, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    """The relay's error for an exception event that ended a stream after the 200."""
    return bedrock_error(kind, _STATUS_OF.get(kind.lower(), 500), message, secrets)
