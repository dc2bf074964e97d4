"""Baichuan (https://platform.baichuan-ai.com/docs/api): OpenAI-style API under ``/v1``
(``/chat/completions``, ``/embeddings`` with ``Baichuan-Text-Embedding``), a Bearer key.
Errors are OpenAI-shaped; a wrong key is 401 "Incorrect API key provided", a bad parameter
400 "Invalid parameters, please check" (its status-code table). A stream's finishing chunk
carries ``usage`` whether asked or not. Its chat models take text only."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="baichuan",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": (
            "Baichuan4-Turbo",
            "Baichuan4-Air",
            "Baichuan4",
            "Baichuan3-Turbo",
            "Baichuan3-Turbo-128k",
            "Baichuan2-Turbo",
        ),
        "/embeddings": ("Baichuan-Text-Embedding",),
    },
    render_error=openai_shape(
        codes={"auth": "invalid_api_key", "model_not_found": "model_not_found"}
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "Incorrect API key provided",
        "model_not_found": "The model `{model}` does not exist",
        "invalid_request": "{message}",
        "image_unsupported": "Invalid parameters, please check",
    },
    vision_models=frozenset(),
    stream_usage="last_chunk",
)
