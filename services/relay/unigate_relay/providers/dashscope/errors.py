"""DashScope's errors, ``{"code", "message", "request_id"}`` with an HTTP status, mapped to
what the client sees and what becomes of the channel.

Codes: https://help.aliyun.com/zh/model-studio/error-code.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import relay_error, scrub

# The account cannot be used: overdue, not purchased/activated, free quota spent.
_ACCOUNT_CODES = ("Arrearage", "AccessDenied.Unpurchased", "AllocationQuota.FreeTierOnly")


def parse(body: bytes) -> tuple[str, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", body[:300].decode(errors="replace")
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("code") or ""), str(data.get("message") or "")


def map_error(status: int, code: str, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    text = scrub(f"{code}: {message}" if code else message or f"HTTP {status}", secrets)
    if code == "InvalidApiKey" or status == 401:
        return relay_error(
            502,
            "The upstream provider rejected this channel's credentials.",
            code="upstream_auth_failed",
            retryable=True,
            upstream_status=401,
            fatal=True,
        )
    if code.startswith(_ACCOUNT_CODES):
        return relay_error(
            502,
            "The upstream provider account behind this channel has no quota left.",
            code="upstream_quota_exhausted",
            retryable=True,
            upstream_status=status or 403,
            fatal=True,
        )
    if status == 429 or code.startswith("Throttling"):
        return relay_error(
            429,
            text,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            retryable=True,
            upstream_status=429,
        )
    if status in (400, 404, 413, 422):
        return relay_error(
            status, text, type="invalid_request_error", code=code, upstream_status=status
        )
    if status == 403:
        return relay_error(403, text, type="permission_error", code=code, upstream_status=403)
    return relay_error(
        503 if status == 503 else 502,
        f"The upstream provider failed: {text}",
        code="upstream_error",
        retryable=True,
        upstream_status=status or 502,
    )
