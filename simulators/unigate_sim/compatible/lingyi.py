"""Lingyi Wanwu / 01.AI (https://platform.lingyiwanwu.com/docs/api-reference): OpenAI-style
API under ``/v1``, errors in OpenAI's shape; stream usage when asked. Only ``yi-vision``
takes images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="lingyi",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("yi-lightning", "yi-large", "yi-medium", "yi-vision")},
    render_error=openai_shape(
        codes={"auth": "invalid_api_key", "model_not_found": "model_not_found"}
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "Invalid API key",
        "model_not_found": "The model `{model}` does not exist",
        "invalid_request": "{message}",
        "image_unsupported": "model {model} does not support image input",
    },
    vision_models=frozenset({"yi-vision"}),
)
