"""Google API errors as the Gemini API and Vertex AI send them:
``{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT", "details": [...]}}``
(https://cloud.google.com/apis/design/errors#http_mapping)."""

from __future__ import annotations

from typing import Any, Final

_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GoogleError(Exception):
    """An error answer; ``status`` defaults to the canonical name of the HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid(message: str) -> GoogleError:
    """A 400 INVALID_ARGUMENT."""
    return GoogleError(400, message)


def unknown_field(name: str, where: str) -> GoogleError:
    """How Google's JSON parser refuses a field its proto does not have."""
    at = f" at '{where}'" if where else ""
    return invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def api_key_invalid(service: str) -> GoogleError:
    message = "API key not valid. Please pass a valid API key."
    return GoogleError(
        400,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": service},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )
