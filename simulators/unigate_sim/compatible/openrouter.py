"""OpenRouter (https://openrouter.ai/docs/api-reference/errors): paths under ``/api/v1``;
models are ``vendor/name`` ids. Errors are ``{"error": {"code": <the HTTP status as a number>,
"message"}}``; 402 means the key's credits are spent. ``stream_options.include_usage`` "has no
effect — full usage details are always included": every stream ends with a ``choices: []``
usage chunk, and it opens with the SSE comment ``: OPENROUTER PROCESSING``.
``provider``/``transforms``/``models``/``route`` are its own routing fields."""

from __future__ import annotations

import orjson

from unigate_sim.compatible.core import CompatibleSimulator, Profile, ProviderError
from unigate_sim.openai.json_types import JSONObject


def _render(error: ProviderError) -> tuple[int, bytes]:
    return error.status, orjson.dumps({"error": {"code": error.status, "message": error.message}})


def _balance(sim: CompatibleSimulator) -> JSONObject:
    """``GET /api/v1/credits`` (openrouter.ai/docs/api/api-reference/credits/get-credits):
    purchased and used credits; ``state.balance`` sets what is left (default 74.75)."""
    left = float(getattr(sim.state, "balance", 74.75))
    return {"data": {"total_credits": left + 25.75, "total_usage": 25.75}}


PROFILE = Profile(
    name="openrouter",
    prefixes=("/api/v1",),
    endpoints=frozenset({"/chat/completions", "/completions", "/models"}),
    models={
        "/chat/completions": (
            "openai/gpt-4o-mini",
            "anthropic/claude-3.5-sonnet",
            "meta-llama/llama-3.3-70b-instruct",
        ),
        "/completions": ("openai/gpt-3.5-turbo-instruct",),
    },
    render_error=_render,
    messages={
        "invalid_url": "Not Found",
        "auth": "User not found.",
        "model_not_found": "{model} is not a valid model ID",
        "invalid_request": "{message}",
        "image_unsupported": "No endpoints found that support image input",
    },
    statuses={"model_not_found": 400, "image_unsupported": 404},
    vision_models=frozenset({"openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"}),
    stream_usage="always",
    stream_preamble=b": OPENROUTER PROCESSING\n\n",
    own_fields=frozenset({"provider", "transforms", "models", "route", "usage"}),
    account={"/api/v1/credits": _balance},
)
