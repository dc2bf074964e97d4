"""Moonshot / Kimi (https://platform.moonshot.cn/docs/api/chat): paths under ``/v1``; no
embeddings. A stream reports usage inside the choice: ``choices[0].usage`` of the chunk
carrying ``finish_reason``, asked or not, and never a separate usage chunk (the shape
northes/go-moonshot#17 and higress-group/higress#1568 record). Errors are
``{"error": {"message", "type"}}``: 401 ``invalid_authentication_error`` "Invalid
Authentication", 404 ``resource_not_found_error`` for unknown models. Only the
``*-vision-preview`` models take images."""

from __future__ import annotations

from unigate_sim.compatible.core import CompatibleSimulator, Profile
from unigate_sim.compatible.errors import openai_shape
from unigate_sim.openai.json_types import JSONObject

VISION = "moonshot-v1-8k-vision-preview"


def _balance(sim: CompatibleSimulator) -> JSONObject:
    """``GET /v1/users/me/balance`` (platform.moonshot.ai/docs/api/balance); ``state.balance``
    sets available_balance (default 49.58894, the reference's example)."""
    available = float(getattr(sim.state, "balance", 49.58894))
    return {
        "code": 0,
        "data": {
            "available_balance": available,
            "voucher_balance": 0.0,
            "cash_balance": available,
        },
        "scode": "0x0",
        "status": True,
    }


PROFILE = Profile(
    name="moonshot",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k", VISION)},
    render_error=openai_shape(
        {
            "auth": "invalid_authentication_error",
            "model_not_found": "resource_not_found_error",
            "invalid_url": "resource_not_found_error",
        },
        with_param_and_code=False,
    ),
    messages={
        "invalid_url": "url.not_found: {path}",
        "auth": "Invalid Authentication",
        "model_not_found": "Not found the model {model} or Permission denied",
        "invalid_request": "{message}",
        "image_unsupported": "Invalid request: image input is not supported by model {model}",
    },
    vision_models=frozenset({VISION}),
    stream_usage="choice",
    account={"/v1/users/me/balance": _balance},
)
