"""Errors that reach clients, in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from typing import Any

import orjson

from unigate.v1 import common_pb2


class ClientFacingError(Exception):
    """An error whose message, type, code and HTTP status are meant for the client."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        # Extra response headers (Retry-After, x-ratelimit-*).
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def to_proto(self) -> common_pb2.ClientError:
        return common_pb2.ClientError(
            http_status=self.status,
            type=self.type,
            code=self.code or "",
            message=self.message,
            param=self.param or "",
        )

    @classmethod
    def from_proto(cls, err: common_pb2.ClientError) -> ClientFacingError:
        return cls(
            err.message,
            status=err.http_status or 500,
            type=err.type or "api_error",
            code=err.code or None,
            param=err.param or None,
        )


class InvalidRequest(ClientFacingError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(ClientFacingError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(ClientFacingError):
    status = 403
    type = "permission_error"


class InsufficientQuota(ClientFacingError):
    status = 403
    type = "insufficient_quota"
    code = "insufficient_quota"


class NotFound(ClientFacingError):
    status = 404
    type = "invalid_request_error"


class ModelNotAvailable(ClientFacingError):
    status = 503
    type = "unigate_error"
    code = "model_not_available"


class UpstreamError(ClientFacingError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class ServiceUnavailable(ClientFacingError):
    status = 503
    type = "unigate_error"
    code = "service_unavailable"
