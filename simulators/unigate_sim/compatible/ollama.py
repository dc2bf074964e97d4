"""Ollama's OpenAI compatibility (https://github.com/ollama/ollama/blob/main/docs/openai.md):
paths under ``/v1`` of the local server; the API key is "required but ignored". A stream
reports usage only when ``stream_options.include_usage`` asks, in a final ``choices: []``
chunk (ollama/ollama#6784, since v0.5.2). Errors are OpenAI-shaped with the type derived
from the status (``not_found_error`` for 404: 'model "x" not found, try pulling it first');
an unknown path is Go's plain-text ``404 page not found``."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape, plain_text_404

PROFILE = Profile(
    name="ollama",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("llama3.2", "qwen2.5", "llava"),
        "/completions": ("llama3.2", "qwen2.5"),
        "/embeddings": ("nomic-embed-text",),
    },
    render_error=plain_text_404(openai_shape({"model_not_found": "not_found_error"}, codes={})),
    messages={
        "invalid_url": "404 page not found",
        "auth": "",
        "model_not_found": 'model "{model}" not found, try pulling it first',
        "invalid_request": "{message}",
        "image_unsupported": "{model} does not support images",
    },
    vision_models=frozenset({"llava"}),
    checks_key=False,
)
