"""AI Proxy Library's errors, mapped for failover and for the client.

Reference: One API's adaptor reads a refusal as ``{"success": false, "errCode", "message"}``
(``errCode`` not 0, whatever the HTTP status) and passes the status on; aiproxy.io's library
clients read the same ``message``. The error codes themselves are not documented publicly, so
the mapping goes by the HTTP status (the code standing in for it when the status is 200): a
refused key (401/403) is the channel's and fatal, 402 its spent balance, 429 a rate limit,
400/404/413/422 the client's 400 in the provider's words, anything else the provider's
failure.
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
from unigate_relay.providers.json_values import obj


def library_error(status: int, code: int, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    message = scrub(message, secrets) or f"AI Proxy answered errCode {code} (HTTP {status})"
    effective = status if status >= 400 else (code if 400 <= code < 600 else 502)
    if effective in (401, 403):
        return credentials_rejected(
            status, f"AI Proxy refused this channel's key ({code or status}): {message}"
        )
    if effective == 402:
        return quota_exhausted(status)
    if effective == 429:
        return rate_limited(message, upstream_status=status)
    if effective in (400, 404, 413, 422):
        return relay_error(
            400, message, type="invalid_request_error", code=str(code), upstream_status=status
        )
    return provider_failed(f"({code}) {message}", upstream_status=status)


def error_of(body: Any, status: int, secrets: list[str]) -> relay_pb2.RelayError | None:
    """The error an answer (or a stream event) reports: an HTTP error status, ``success:
    false`` or a non-zero ``errCode``; None when it reports none."""
    data = obj(body)
    code = data.get("errCode")
    code = code if isinstance(code, int) and not isinstance(code, bool) else 0
    if status < 400 and data.get("success") is not False and code == 0:
        return None
    return library_error(status, code, str(data.get("message") or ""), secrets)
