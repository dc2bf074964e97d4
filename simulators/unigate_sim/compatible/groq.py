"""Groq (https://console.groq.com/docs/openai): paths under ``/openai/v1``; a stream reports
its usage only in ``x_groq.usage`` of the chunk carrying ``finish_reason``, asked or not.
Errors in OpenAI's shape (401 ``invalid_api_key`` "Invalid API Key";
https://console.groq.com/docs/errors)."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="groq",
    prefixes=("/openai/v1",),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("llama-3.3-70b-versatile", "llama-3.1-8b-instant")},
    render_error=openai_shape(
        codes={"auth": "invalid_api_key", "model_not_found": "model_not_found"}
    ),
    messages={
        "invalid_url": "Unknown request URL: {method} {path}. Please check the URL for typos, "
        "or see the docs at https://console.groq.com/docs/",
        "auth": "Invalid API Key",
        "model_not_found": "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request": "{message}",
        "image_unsupported": "image input is not supported for model {model}",
    },
    stream_usage="x_groq",
)
