"""Spark's failures mapped to what the client sees and what becomes of the channel.

Two kinds: the WebSocket handshake refused with an HTTP status (401 bad or unknown
signature/key, 403 a date more than 300 s off or an address not allowed — iFlytek's general
URL authentication document), and ``header.code`` != 0 in an answer frame (error codes of
https://www.xfyun.cn/doc/spark/Web.html §5).
"""

from __future__ import annotations

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

# The app is not licensed for this service, is blacklisted, or its tokens are spent:
# 11200 no licence / volume over the limit, 10015 appid blacklisted, 10016 appid not
# authorized (service or version not opened, tokens exhausted).
_ACCOUNT_CODES = frozenset({11200, 10015, 10016})
# 11201: the app's daily quota is used up (until tomorrow): the channel cannot serve.
_DAILY_QUOTA = 11201
# Rate and concurrency: 11202 per-second, 11203 concurrent connections, 10006/10007 the
# user's session is busy, 10110 server busy.
_RATE_CODES = frozenset({11202, 11203, 10006, 10007, 10110})
# Content moderation: 10013 input, 10014 output, 10019 tendency to violate.
_CONTENT_CODES = frozenset({10013, 10014, 10019})
# The request itself: 10003 message format, 10004 schema, 10005 parameter value, 10163
# engine parameter check.
_REQUEST_CODES = frozenset({10003, 10004, 10005, 10163})
# 10907: history plus question exceed the model's token limit.
_TOO_LONG = 10907


def map_code(code: int, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    """What the client sees for an answer frame's ``header.code``."""
    text = f"Spark error {code}: {scrub(message, secrets)}"
    if code in _ACCOUNT_CODES:
        return credentials_rejected(403)
    if code == _DAILY_QUOTA:
        return quota_exhausted(429)
    if code in _RATE_CODES:
        return rate_limited(text)
    if code in _CONTENT_CODES:
        return relay_error(
            400, text, type="invalid_request_error", code="content_filter", upstream_status=400
        )
    if code == _TOO_LONG:
        return relay_error(
            400,
            text,
            type="invalid_request_error",
            code="context_length_exceeded",
            upstream_status=400,
        )
    if code in _REQUEST_CODES:
        return relay_error(
            400, text, type="invalid_request_error", code="invalid_request", upstream_status=400
        )
    # 10000-10012, 10110, 10222 and anything unknown: iFlytek's side.
    return provider_failed(text)


def handshake_error(status: int, body: bytes) -> relay_pb2.RelayError:
    """The WebSocket upgrade was answered with ``status`` instead of 101."""
    try:
        parsed = orjson.loads(body)
        message = str(parsed.get("message") or "") if isinstance(parsed, dict) else ""
    except orjson.JSONDecodeError:
        message = body[:200].decode(errors="replace")
    if status == 401:
        return credentials_rejected(401)
    if status == 403 and "date" in message.lower():
        # Our clock, not the channel: the same request signed now would pass.
        return relay_error(
            502,
            "The upstream provider refused the request's date (clock skew).",
            code="upstream_clock_skew",
            retryable=True,
            upstream_status=403,
        )
    if status == 403:
        return credentials_rejected(403)
    if status == 429:
        return rate_limited(f"Spark refused the connection: {message or status}")
    if status == 404:
        return relay_error(
            404,
            f"Spark has no service at this channel's path: {message or status}",
            type="invalid_request_error",
            code="model_not_found",
            upstream_status=404,
        )
    return relay_error(
        502,
        f"The upstream provider refused the connection: HTTP {status} {message}".strip(),
        code="upstream_error",
        retryable=True,
        upstream_status=status,
    )
