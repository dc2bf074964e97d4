"""Tencent Cloud API 3.0 errors: ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``
in an HTTP 200 body, mapped to what the client sees and what becomes of the channel.

Codes: the common error codes of API 3.0 (https://cloud.tencent.com/document/api/213/30435)
and Hunyuan's own (https://cloud.tencent.com/document/api/1729/101838).
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

# The account cannot be used: not activated, stopped for arrears, resources used up.
_ACCOUNT_PREFIXES = (
    "FailedOperation.ServiceNotActivated",
    "FailedOperation.ServiceStop",
    "FailedOperation.ServiceStopArrears",
    "FailedOperation.FreeResourcePackExhausted",
    "FailedOperation.ResourcePackExhausted",
    "ResourceInsufficient.ChargeResourceExhaust",
    "UnauthorizedOperation",
)
_RATE_PREFIXES = (
    "RequestLimitExceeded",
    "LimitExceeded",
    "FailedOperation.EngineServerLimitExceeded",
)
_CLIENT_PREFIXES = (
    "InvalidParameter",
    "InvalidParameterValue",
    "MissingParameter",
    "UnknownParameter",
    "UnsupportedOperation",
    "OperationDenied",
)


def tencent_error(body: Any) -> tuple[str, str] | None:
    """``(Code, Message)`` if ``body`` is an API 3.0 error answer, else None."""
    response = body.get("Response") if isinstance(body, dict) else None
    error = response.get("Error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error.get("Code"):
        return str(error["Code"]), str(error.get("Message") or "")
    return None


def stream_error(event: Any) -> tuple[str, str] | None:
    """A failure reported inside a stream: ``{"ErrorMsg": {"Code", "Msg"}}``."""
    error = event.get("ErrorMsg") if isinstance(event, dict) else None
    if isinstance(error, dict) and (error.get("Code") or error.get("Msg")):
        return f"StreamError.{error.get('Code')}", str(error.get("Msg") or "")
    return None


def map_error(code: str, message: str, secrets: list[str]) -> relay_pb2.RelayError:
    text = f"{code}: {scrub(message, secrets)}" if message else code
    if code == "AuthFailure.SignatureExpire":
        # Our clock is off, not the key: another relay (or this one later) may well pass.
        return relay_error(
            502,
            "The upstream provider refused the request's timestamp.",
            code="upstream_auth_failed",
            retryable=True,
            upstream_status=401,
        )
    if code.startswith("AuthFailure"):
        return credentials_rejected(401)
    if code.startswith(_ACCOUNT_PREFIXES):
        return quota_exhausted(403)
    if code.startswith(_RATE_PREFIXES):
        return rate_limited(text)
    if code.startswith(_CLIENT_PREFIXES):
        return relay_error(400, text, type="invalid_request_error", code=code, upstream_status=400)
    if code.startswith("ResourceNotFound"):
        return relay_error(
            404, text, type="invalid_request_error", code="model_not_found", upstream_status=404
        )
    return provider_failed(
        text, status=503 if code.startswith("InternalError") else 502, upstream_status=500
    )
