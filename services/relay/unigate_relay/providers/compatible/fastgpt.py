"""FastGPT (https://doc.fastgpt.io, "对话接口"): an app's chat through the OpenAI-compatible
``/v1/chat/completions`` under the deployment's ``/api`` root (One API's default base URL is
the old cloud's ``https://fastgpt.run/api/openapi``; self-hosted: ``http://host:3000/api``),
``Authorization: Bearer fastgpt-...`` (an app's key: the key picks the app; ``model``,
``temperature`` and the like are ignored, the app's workflow decides).

Usage: FastGPT says it "does not return the tokens actually used": its ``usage`` is always
``{1, 1, 1}`` and its streams carry none, so the figures are not read; every call is counted
from the text and marked estimated (the real consumption is only in ``detail: true``'s
per-module ``responseData``, in FastGPT's own points, which the relay does not ask for).

Errors (``packages/service/common/response``): HTTP 500 with ``{"code", "statusText",
"message", "data"}``; ``code`` 514 ``unAuthApiKey`` (a wrong key) and 403
``unAuthorization`` are the channel's key, 510 ``insufficientQuota`` its balance.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import (
    credentials_rejected,
    provider_failed,
    quota_exhausted,
    relay_error,
    scrub,
)
from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

_KEY_REFUSED = frozenset({403, 514})
_NO_BALANCE = 510


def fastgpt_error(status: int, body: bytes, secrets: list[str]) -> relay_pb2.RelayError | None:
    """FastGPT's ``{"code", "statusText", "message"}`` refusal mapped; None for any other
    body (the shared table reads it)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "statusText" not in data:
        return None
    code = data.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    words = scrub(str(data.get("message") or data.get("statusText") or ""), secrets)
    message = words or f"FastGPT answered code {code} (HTTP {status})"
    if code in _KEY_REFUSED:
        return credentials_rejected(
            status,
            f"FastGPT refused this channel's key ({code} {data.get('statusText')}): {message}",
        )
    if code == _NO_BALANCE:
        return quota_exhausted(status)
    if code in (400, 404, 422):
        return relay_error(
            400, message, type="invalid_request_error", code=str(code), upstream_status=status
        )
    return provider_failed(f"({code}) {message}", upstream_status=status)


SPEC = CompatibleSpec(
    channel_type=22,
    name="FastGPT",
    default_base_url="https://fastgpt.run/api/openapi",
    path_prefix="/v1",
    reports_usage=False,
    error_map=fastgpt_error,
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="fastgpt-... (an app's API key)",
    key_pattern=r"^fastgpt-",
    gen_ai_system="fastgpt",
)
