"""Doubao on Volcengine Ark (https://www.volcengine.com/docs/82379/1298454, error codes
https://www.volcengine.com/docs/82379/1299023): paths under ``/api/v3``; the model of a request
is the operator's inference endpoint id (``ep-20240101-abcde``). Errors are
``{"error": {"code", "message", "param", "type"}}`` with Ark's codes and a request id in the
message: 401 ``AuthenticationError``, 404 ``InvalidEndpointOrModel.NotFound``, 400
``InvalidParameter``. Stream usage when ``stream_options.include_usage`` asks, OpenAI's way."""

from __future__ import annotations

import orjson

from unigate_sim.compatible.core import Profile, ProviderError
from unigate_sim.compatible.errors import REQUEST_ID

CHAT = "ep-20240101-abcde"
VISION = "ep-20240615-vsion"
EMBEDDING = "ep-20240101-embed"
_CODES = {
    "invalid_url": ("NotFound", "NotFound"),
    "auth": ("AuthenticationError", "Unauthorized"),
    "model_not_found": ("InvalidEndpointOrModel.NotFound", "NotFound"),
}


def _render(error: ProviderError) -> tuple[int, bytes]:
    code, kind = _CODES.get(error.kind, ("InvalidParameter", "BadRequest"))
    message = f"{error.message} Request id: {REQUEST_ID}"
    body = {"error": {"code": code, "message": message, "param": error.param or "", "type": kind}}
    return error.status, orjson.dumps(body)


PROFILE = Profile(
    name="doubao",
    prefixes=("/api/v3",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={"/chat/completions": (CHAT, VISION), "/embeddings": (EMBEDDING,)},
    render_error=_render,
    messages={
        "invalid_url": "The specified resource is not found.",
        "auth": "The API key or AK/SK in the request is missing or invalid.",
        "model_not_found": "The model or endpoint {model} does not exist or you do not have "
        "access to it.",
        "invalid_request": "{message}",
        "image_unsupported": "The parameter `messages.content` specified in the request are "
        "not valid: image input is not supported by endpoint {model}.",
    },
    vision_models=frozenset({VISION}),
)
