"""Novita AI's OpenAI-compatible LLM API (LiteLLM's provider page: endpoint
``https://api.novita.ai/v3/openai``, ``/chat/completions`` and ``/completions``, with
``stream_options`` and ``response_format`` among the supported parameters; its models list
at ``/models`` and embeddings at ``/embeddings``): ``org/model`` names, Bearer ``sk_`` keys.
Novita's error guide: 400 invalid parameters, 401 a missing or wrong key, 403 an account not
allowed the model, 429 rate limits; the bodies here are OpenAI's shape, which its
OpenAI-compatible API answers in. A stream reports usage when asked, as OpenAI's does. Image
parts go to the model as sent (which models read them is not checked here)."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="novita",
    prefixes=("/v3/openai",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": (
            "meta-llama/llama-3.1-8b-instruct",
            "deepseek/deepseek-v3-0324",
            "qwen/qwen3-235b-a22b",
        ),
        "/embeddings": ("qwen/qwen3-embedding-0.6b",),
    },
    render_error=openai_shape(
        codes={"auth": "INVALID_API_KEY", "model_not_found": "MODEL_NOT_FOUND"}
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "Invalid API key",
        "model_not_found": "model {model} not found",
        "invalid_request": "{message}",
        "image_unsupported": "{model} does not take images",
    },
)
