"""360 Zhinao (https://ai.360.com/platform/docs/overview): OpenAI-style API under ``/v1``
with chat and embeddings (``embedding-bert-512-v1``); text-only models; stream usage when
asked, OpenAI's way. Errors keep OpenAI's shape (One API passes them through unchanged)."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="zhinao360",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("360gpt-pro", "360gpt-turbo", "360gpt2-pro"),
        "/embeddings": ("embedding-bert-512-v1",),
    },
    render_error=openai_shape(codes={"auth": "1002", "model_not_found": "1004"}),
    messages={
        "invalid_url": "Not Found",
        "auth": "invalid api key",
        "model_not_found": "model {model} not exist",
        "invalid_request": "{message}",
        "image_unsupported": "model {model} does not support image input",
    },
    vision_models=frozenset(),
)
