"""Coze's errors, mapped for failover and for the client.

Reference: Coze OpenAPI error codes as its SDKs surface them (``{"code", "msg"}``): 4100
"authentication is invalid" and 4101 (the token lacks permission for the bot) are the
channel's credentials; 4200 a bot that does not exist or is not published to the API (the
channel's mapping: the client's 400 with Coze's words); 4013 / 4019 request rate or balance
limits; in a stream, ``conversation.chat.failed`` carries ``last_error`` {code, msg} and an
``error`` event ``{code, msg}``.
"""

from __future__ import annotations

from typing import Any, Final

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    provider_failed,
    quota_exhausted,
    rate_limited,
    relay_error,
    scrub,
)

_AUTH: Final = frozenset({4100, 4101})
_RATE: Final = frozenset({4013, 4029})
_BALANCE: Final = frozenset({4019, 4028})


def coze_error(code: int, message: str, status: int, secrets: list[str]) -> relay_pb2.RelayError:
    message = scrub(message, secrets) or f"Coze answered code {code} (HTTP {status})"
    if code in _AUTH or status in (401, 403):
        return credentials_rejected(
            status, f"Coze refused this channel's token ({code}): {message}"
        )
    if code in _BALANCE:
        return quota_exhausted(status)
    if code in _RATE or status == 429:
        return rate_limited(message, upstream_status=status)
    if status >= 500 or code >= 5000:
        return provider_failed(f"({code}) {message}", upstream_status=status)
    return relay_error(
        400, message, type="invalid_request_error", code=str(code), upstream_status=status
    )


def error_of(body: Any, status: int, secrets: list[str]) -> relay_pb2.RelayError | None:
    """The error a Coze JSON answer reports (``code`` not 0), or None."""
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if not isinstance(code, int) or code == 0:
        return None
    return coze_error(code, str(body.get("msg") or ""), status, secrets)
