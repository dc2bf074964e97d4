"""The error bodies of the OpenAI-like providers, one builder per shape. Each builder returns
an :data:`~unigate_sim.compatible.core.ErrorRenderer` (status and body bytes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate_sim.compatible.core import ErrorKind, ErrorRenderer, ProviderError

#: Simulated request id, fixed so tests can predict messages that quote it.
REQUEST_ID = "0217000000000000000000000000000000000000sim"


def openai_shape(
    types: Mapping[ErrorKind, str] | None = None,
    codes: Mapping[ErrorKind, Any] | None = None,
    *,
    top: Mapping[str, Any] | None = None,
    with_param_and_code: bool = True,
) -> ErrorRenderer:
    """OpenAI's ``{"error": {message, type, param, code}}``, as copied by most providers;
    ``top`` adds fields beside ``error`` (DashScope's ``request_id``)."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        inner: dict[str, Any] = {
            "message": error.message,
            "type": (types or {}).get(error.kind, "invalid_request_error"),
        }
        if with_param_and_code:
            inner["param"] = error.param
            inner["code"] = (codes or {}).get(error.kind)
        return error.status, orjson.dumps({"error": inner, **(top or {})})

    return render


def code_and_message(codes: Mapping[ErrorKind, str]) -> ErrorRenderer:
    """``{"error": {"code", "message"}}`` — Zhipu's shape (string codes such as "1211")."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        body = {"error": {"code": codes.get(error.kind, "1210"), "message": error.message}}
        return error.status, orjson.dumps(body)

    return render


def plain_text_404(other: ErrorRenderer) -> ErrorRenderer:
    """Go HTTP servers' plain-text ``404 page not found`` for unknown paths, else ``other``."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        if error.kind == "invalid_url":
            return 404, b"404 page not found"
        return other(error)

    return render


#: google.rpc status names for the HTTP statuses Google's OpenAI layer refuses with.
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}


def google_list_shape() -> ErrorRenderer:
    """Google's error object ``{"error": {code, message, status}}`` wrapped in a one-element
    list, as the Gemini API's OpenAI-compatible endpoint answers (continuedev/continue#8516);
    a wrong key also carries the ``ErrorInfo`` detail with reason ``API_KEY_INVALID``."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        inner: dict[str, Any] = {
            "code": error.status,
            "message": error.message,
            "status": _GOOGLE_STATUS.get(error.status, "INVALID_ARGUMENT"),
        }
        if error.kind == "auth":
            inner["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        return error.status, orjson.dumps([{"error": inner}])

    return render


def typed_error(types: Mapping[ErrorKind, str]) -> ErrorRenderer:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` — MiniMax's
    OpenAI-compatible API (NousResearch/hermes-agent#2094, Kilo-Org/kilocode#4506)."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        body = {
            "type": "error",
            "error": {"type": types.get(error.kind, "bad_request_error"), "message": error.message},
            "request_id": REQUEST_ID,
        }
        return error.status, orjson.dumps(body)

    return render


#: FastGPT's error codes (``ERROR_RESPONSE`` of packages/global/common/error/errorCode.ts).
_FASTGPT_CODES: dict[ErrorKind, tuple[int, str]] = {"auth": (514, "unAuthApiKey")}


def fastgpt_shape() -> ErrorRenderer:
    """FastGPT's ``jsonRes`` refusal: HTTP 500 whatever the cause, the cause in the body's
    ``{"code", "statusText", "message", "data": null}`` (514 ``unAuthApiKey`` for a wrong key;
    500 ``error`` for anything it did not classify); an unknown path is Next.js's 404 page."""

    def render(error: ProviderError) -> tuple[int, bytes]:
        if error.kind == "invalid_url":
            return 404, b"404: This page could not be found."
        code, text = _FASTGPT_CODES.get(error.kind, (500, "error"))
        body = {"code": code, "statusText": text, "message": error.message, "data": None}
        return 500, orjson.dumps(body)

    return render
