"""Google's API error shape and its canonical status names (https://cloud.google.com/apis/
design/errors#http_mapping, ``google.rpc.Code``): the table the gateway's Gemini routes answer
their errors with.

A Google error is ``{"error": {"code": <HTTP status>, "message", "status": <name>,
"details": [...]}}``; a refused API key is a 400 ``INVALID_ARGUMENT`` whose ``ErrorInfo``
detail says ``API_KEY_INVALID`` (Google's own answer, which the ``google-genai`` SDK reads).
"""

from __future__ import annotations

from typing import Any, Final

STATUS_OF_CODE: Final[dict[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
STATUS_NAMES: Final = frozenset(
    {
        *STATUS_OF_CODE.values(),
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "ALREADY_EXISTS",
        "UNKNOWN",
        "DATA_LOSS",
    }
)
ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"


def status_of_code(code: int) -> str:
    """Google's status name for an HTTP status (the 4xx/5xx fallback for one not listed)."""
    if code in STATUS_OF_CODE:
        return STATUS_OF_CODE[code]
    return "INVALID_ARGUMENT" if 400 <= code < 500 else "UNKNOWN"


def google_error_body(
    code: int, message: str, status: str = "", *, reason: str = "", domain: str = ""
) -> dict[str, Any]:
    """``{"error": {...}}`` with an ``ErrorInfo`` detail when ``reason`` is given."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status if status in STATUS_NAMES else status_of_code(code),
    }
    if reason:
        error["details"] = [
            {"@type": ERROR_INFO, "reason": reason, "domain": domain or "googleapis.com"}
        ]
    return {"error": error}
