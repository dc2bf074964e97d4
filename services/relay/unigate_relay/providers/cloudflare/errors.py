"""Cloudflare's API errors, mapped for failover and for the client.

Reference: the Cloudflare API envelope ``{"success": false, "errors": [{"code", "message"}]}``
and Workers AI's error table: code 10000 "Authentication error" (a refused token), 7003 "Could
not route to …" (an account id or path that does not exist: the channel's configuration),
5007 "No such model", 5006 "Bad input", 3040 "Capacity temporarily exceeded" (429), 3036
"Account limited" (the account's daily allocation used up).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    error_from_upstream,
    quota_exhausted,
    relay_error,
    scrub,
)

_AUTH: Final = frozenset({10000, 10001, 9109})
_NOT_ROUTED: Final = 7003
_ACCOUNT_LIMITED: Final = 3036


def _first_error(body: bytes) -> tuple[int, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        return (code if isinstance(code, int) else 0), str(errors[0].get("message") or "")
    return 0, ""


def cloudflare_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    code, message = _first_error(body)
    if not code and not message:
        return error_from_upstream(status, body, headers, secrets)
    message = scrub(message, secrets) or f"upstream answered HTTP {status}"
    if code in _AUTH or status in (401, 403):
        return credentials_rejected(
            status, f"Cloudflare refused this channel's API token ({code}): {message}"
        )
    if code == _NOT_ROUTED:
        # The channel's account id (or base URL) is wrong: no request will ever route.
        return relay_error(
            502,
            f"Cloudflare cannot route this channel's requests ({code}): {message}",
            code="upstream_misconfigured",
            retryable=True,
            upstream_status=status,
            fatal=True,
        )
    if code == _ACCOUNT_LIMITED:
        return quota_exhausted(status)
    if status >= 429:
        return error_from_upstream(
            status, orjson.dumps({"error": {"message": message}}), headers, secrets
        )
    return relay_error(
        status if status in (400, 404, 413, 422) else 400,
        message,
        type="invalid_request_error",
        code=str(code),
        upstream_status=status,
    )
