"""Structured output is served or refused, never dropped.

A chat request whose ``response_format`` asks for JSON (``json_object``, ``json_schema``) on
a family that cannot express it (``Provider.response_formats``: Baidu's, Tencent's,
iFlytek's and DashScope's native protocols have no such option here) is answered with a 400
before any provider is called: sent without it, the answer would be plain text the client's
parser then fails on, billed all the same.
"""

from __future__ import annotations

import orjson

from unigate.v1 import relay_pb2
from unigate_relay.providers.base import Provider, relay_error

CHAT = "chat.completions"


def _asked_format(body: bytes) -> str | None:
    """The JSON format a chat body asks for (None: plain text, or no readable body)."""
    if b'"response_format"' not in body:
        return None
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    fmt = request.get("response_format") if isinstance(request, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return kind if isinstance(kind, str) and kind != "text" else None


def unsupported_format(
    provider: Provider, request: relay_pb2.RelayRequest
) -> relay_pb2.RelayError | None:
    """The client's 400 when ``provider`` cannot give the structured output asked for."""
    if request.endpoint != CHAT:
        return None
    kind = _asked_format(request.body)
    if kind is None or kind in provider.response_formats:
        return None
    return relay_error(
        400,
        f"This model's provider cannot return structured output (`response_format` of type "
        f"`{kind}`); ask without it, or use a model of another provider.",
        type="invalid_request_error",
        code="unsupported_response_format",
    )
