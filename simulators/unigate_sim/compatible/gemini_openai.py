"""The Gemini API's OpenAI-compatible endpoint
(https://ai.google.dev/gemini-api/docs/openai): paths under ``/v1beta/openai``
(``/chat/completions``, ``/embeddings``, ``/models``), the Gemini API key as a Bearer token.
Errors are Google's error object wrapped in a one-element JSON list, and a wrong key is a
**400** ``INVALID_ARGUMENT`` "API key not valid. Please pass a valid API key." with the
``API_KEY_INVALID`` reason (continuedev/continue#8516); an unknown model is Google's 404
``NOT_FOUND``. A stream carries ``usage`` on its chunks rather than in a separate
``choices: []`` chunk (envoyproxy/ai-gateway#1503, ogx-ai/ogx#5122): here on the finishing
chunk, asked for or not. Every Gemini model takes images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import google_list_shape

PROFILE = Profile(
    name="gemini_openai",
    prefixes=("/v1beta/openai",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"),
        "/embeddings": ("gemini-embedding-001", "text-embedding-004"),
    },
    render_error=google_list_shape(),
    messages={
        "invalid_url": "The requested URL {path} was not found on this server.",
        "auth": "API key not valid. Please pass a valid API key.",
        "model_not_found": "models/{model} is not found for API version v1main, or is not "
        "supported for generateContent. Call ListModels to see the list of available models "
        "and their supported methods.",
        "invalid_request": "{message}",
        "image_unsupported": "{model} does not take images.",
    },
    statuses={"auth": 400},
    stream_usage="last_chunk",
)
