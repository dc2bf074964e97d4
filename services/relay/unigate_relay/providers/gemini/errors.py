"""Google API errors (Gemini API and Vertex AI) → unigate relay errors.

Google answers ``{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT",
"details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason":
"API_KEY_INVALID", ...}]}}`` (https://ai.google.dev/gemini-api/docs/troubleshooting,
https://cloud.google.com/apis/design/errors). What each means for the channel:

* a refused credential — ``API_KEY_INVALID`` (a 400!), 401 ``UNAUTHENTICATED``, 403
  ``PERMISSION_DENIED`` (unregistered caller, API disabled, suspended project, missing IAM
  permission) — and 400 ``FAILED_PRECONDITION`` ("User location is not supported") make the
  channel unusable: fatal, so it is disabled, and retried elsewhere;
* 429 ``RESOURCE_EXHAUSTED`` is a rate limit even when worded "You exceeded your current
  quota" (the per-minute quotas say so too), so it is retryable and never disables the
  channel; ``RetryInfo.retryDelay`` becomes the cooldown;
* 5xx (``INTERNAL``, ``UNAVAILABLE`` "The model is overloaded", ``DEADLINE_EXCEEDED``) are
  retryable; other 4xx are the client's and pass through with Google's words.
"""

from __future__ import annotations

from typing import Any

import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    error_from_upstream,
    relay_error,
    scrub,
)


class CredentialError(Exception):
    """The channel's credentials could not be turned into request headers."""

    def __init__(self, error: relay_pb2.RelayError) -> None:
        super().__init__(error.error.message)
        self.error = error


def parse_google_error(body: bytes | Any) -> tuple[str, str, str]:
    """(message, status, ErrorInfo reason) of a Google error body (streams without
    ``alt=sse`` wrap it in a one-element array)."""
    data = body
    if isinstance(body, bytes | bytearray):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body[:500].decode(errors="replace").strip(), "", ""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", "", ""
    reason = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
            break
    return str(error.get("message") or ""), str(error.get("status") or ""), reason


def _retry_delay(body: bytes | Any) -> float:
    """Seconds from a ``RetryInfo`` detail (``"retryDelay": "23s"``), 0 if none."""
    try:
        data = orjson.loads(body) if isinstance(body, bytes | bytearray) else body
    except orjson.JSONDecodeError:
        return 0.0
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    for detail in (error or {}).get("details") or [] if isinstance(error, dict) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(float(delay[:-1]), 0.0)
            except ValueError:
                return 0.0
    return 0.0


def _credentials_refused(status: int, google_status: str, reason: str, message: str) -> bool:
    lowered = message.lower()
    return (
        reason in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "CONSUMER_SUSPENDED")
        or "api key not valid" in lowered
        or "api key not found" in lowered
        or "api key expired" in lowered
        or status in (401, 403)
        or google_status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    )


def google_error(
    status: int, body: bytes | Any, headers: CIMultiDictProxy[str] | None, secrets: list[str]
) -> relay_pb2.RelayError:
    """The relay error for a Google error answer (``body`` raw, or already parsed when it
    came inside a stream)."""
    message, google_status, reason = parse_google_error(body)
    message = scrub(message or f"upstream answered HTTP {status}", secrets)
    code = google_status.lower()
    if _credentials_refused(status, google_status, reason, message):
        return credentials_rejected(status)
    if google_status == "FAILED_PRECONDITION" or "location is not supported" in message.lower():
        return relay_error(
            502,
            f"The upstream provider cannot serve this channel: {message}",
            code="upstream_unavailable_for_channel",
            retryable=True,
            upstream_status=status,
            fatal=True,
        )
    if status == 429 or google_status == "RESOURCE_EXHAUSTED":
        return relay_error(
            429,
            message,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            retryable=True,
            upstream_status=status or 429,
            retry_after=_retry_delay(body),
        )
    if status in (400, 404, 413, 422) or google_status in ("INVALID_ARGUMENT", "NOT_FOUND"):
        return relay_error(
            status if status in (400, 404, 413, 422) else 400,
            message,
            type="invalid_request_error",
            code=code,
            upstream_status=status,
        )
    if status >= 500 or google_status in ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return relay_error(
            503 if status == 503 or google_status == "UNAVAILABLE" else 502,
            f"The upstream provider failed: {message}",
            code=code or "upstream_error",
            retryable=True,
            upstream_status=status or 502,
        )
    if isinstance(body, bytes | bytearray) and headers is not None:
        return error_from_upstream(status, bytes(body), headers, secrets)
    return relay_error(
        502, f"The upstream provider failed: {message}", code=code or "upstream_error"
    )
