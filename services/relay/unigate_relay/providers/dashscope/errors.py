"""DashScope's errors, ``{"code", "message", "request_id"}`` with an HTTP status, mapped to
what the client sees and what becomes of the channel.

Codes: https://help.aliyun.com/zh/model-studio/error-code.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    provider_failed,
    quota_exhausted,
    rate_limited,
    relay_error,
    scrub,
)

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
        return credentials_rejected(401)
    if code.startswith(_ACCOUNT_CODES):
        return quota_exhausted(status or 403)
    if status == 429 or code.startswith("Throttling"):
        return rate_limited(text)
    if status in (400, 404, 413, 422):
        return relay_error(
            status, text, type="invalid_request_error", code=code, upstream_status=status
        )
    if status == 403:
        return relay_error(403, text, type="permission_error", code=code, upstream_status=403)
    return provider_failed(
        text, status=503 if status == 503 else 502, upstream_status=status or 502
    )
