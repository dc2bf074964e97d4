"""xAI (https://docs.x.ai/docs/api-reference): paths under ``/v1``. Errors are
``{"code": <gRPC-style status text>, "error": <message>}``, and a wrong key is a **400**
"Incorrect API key provided: xa***Q6. You can obtain an API key from https://console.x.ai."
(continuedev/continue#10778, openai/codex#1352), not a 401. A stream reports usage when asked,
in a final ``choices: []`` chunk (brainlid/langchain#626). Only ``grok-2-vision`` takes
images; no embedding model is served."""

from __future__ import annotations

import orjson

from unigate_sim.compatible.core import Profile, ProviderError

_CODES = {
    "invalid_url": "Some requested entity was not found",
    "model_not_found": "Some requested entity was not found",
}


def _render(error: ProviderError) -> tuple[int, bytes]:
    code = _CODES.get(error.kind, "Client specified an invalid argument")
    return error.status, orjson.dumps({"code": code, "error": error.message})


PROFILE = Profile(
    name="xai",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("grok-2", "grok-2-vision", "grok-3", "grok-3-mini"),
        "/embeddings": (),
    },
    render_error=_render,
    messages={
        "invalid_url": "Not found: {path}",
        "auth": "Incorrect API key provided: {key}. You can obtain an API key from "
        "https://console.x.ai.",
        "model_not_found": "The model {model} does not exist or your team does not have "
        "access to it.",
        "invalid_request": "{message}",
        "image_unsupported": "Image inputs are not supported by this model.",
    },
    statuses={"auth": 400},
    vision_models=frozenset({"grok-2-vision"}),
)
