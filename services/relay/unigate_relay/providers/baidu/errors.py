"""Qianfan's errors, which come as ``{"error_code", "error_msg"}`` in an HTTP 200 body, mapped
to what the client sees and what the gateway does about the channel.

Codes: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/tlmyncueh (the same constants as the
Qianfan SDK's ``APIErrorCode``).
"""

from __future__ import annotations

from typing import Any

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    provider_failed,
    quota_exhausted,
    rate_limited,
    relay_error,
    scrub,
)

# The access token is invalid / expired: exchange a new one and try once more.
TOKEN_CODES = frozenset({110, 111})
# The key pair or the app behind it: 13 get service token failed, 14 IAM certification
# failed, 15 app does not exist.
_CREDENTIAL_CODES = frozenset({13, 14, 15})
# The account cannot be used: 6 no permission to access data (service not opened), 17 daily
# request limit reached and 19 total request limit reached (what an unpaid or exhausted
# account is told).
_ACCOUNT_CODES = frozenset({6, 17, 19})
# Rate limits: 4 cluster-wide, 18 QPS, 336501 RPM, 336502 TPM.
_RATE_CODES = frozenset({4, 18, 336501, 336502})
# Baidu's side: 1 unknown, 2 service unavailable, 336000 internal error, 336100 high load.
_SERVER_CODES = frozenset({1, 2, 336000, 336100})
# No such API for this model: 3 unsupported method, 336005 API name does not exist.
_NOT_FOUND_CODES = frozenset({3, 336005})
# 336004: no permission to use this model.
_MODEL_PERMISSION = 336004


def baidu_error(body: Any) -> tuple[int, str] | None:
    """``(error_code, error_msg)`` if ``body`` is a Qianfan error, else None."""
    if isinstance(body, dict) and body.get("error_code"):
        try:
            return int(body["error_code"]), str(body.get("error_msg") or "")
        except (TypeError, ValueError):
            return 0, str(body.get("error_msg") or body["error_code"])
    return None


def map_error(code: int, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    """What the client sees for Qianfan's ``error_code``, and what becomes of the channel."""
    message = scrub(message or f"Baidu error {code}", secrets)
    text = f"Baidu error {code}: {message}"
    if code in TOKEN_CODES or code in _CREDENTIAL_CODES:
        return credentials_rejected(401)
    if code in _ACCOUNT_CODES:
        return quota_exhausted(403)
    if code in _RATE_CODES:
        return rate_limited(text)
    if code in _SERVER_CODES:
        return provider_failed(text, status=503, upstream_status=503)
    if code == _MODEL_PERMISSION:
        # This model is not opened for the account: another channel may have it.
        return relay_error(
            403,
            text,
            type="permission_error",
            code="model_not_permitted",
            retryable=True,
            upstream_status=403,
        )
    if code in _NOT_FOUND_CODES:
        return relay_error(
            404, text, type="invalid_request_error", code="model_not_found", upstream_status=404
        )
    if code == 100 or 336001 <= code <= 336099 or 336101 <= code <= 336499:
        # 100 invalid parameter; 336001 invalid argument, 336002 bad JSON, 336003 parameter
        # check failed, 336006.. message rules, 336104/336105 system/user setting.
        return relay_error(
            400, text, type="invalid_request_error", code="invalid_request", upstream_status=400
        )
    return provider_failed(text)
