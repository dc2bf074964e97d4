"""A strict simulator of Cloudflare Workers AI's OpenAI-compatible endpoints.

Reference: Cloudflare's "OpenAI compatible API endpoints" (Workers AI): ``POST
https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1/chat/completions`` and
``/ai/v1/embeddings`` with ``Authorization: Bearer <API token>``, models named ``@cf/…`` /
``@hf/…``; and the Cloudflare API's error envelope ``{"result": null, "success": false,
"errors": [{"code", "message"}], "messages": []}`` as clients report it: an unknown account or
path is code 7003 "Could not route to …, perhaps your object identifier is invalid?" (404), a
refused token code 10000 "Authentication error", an unknown model Workers AI's 5007 "No such
model", a bad input 5006 ``AiError: Bad input: …`` (Workers AI's error table). A stream's
usage rides on the chunk that carries ``finish_reason``.

Built on the OpenAI-like simulator machinery (``unigate_sim.compatible.core``), which still
validates and answers every request with the strict OpenAI simulator.
"""

from __future__ import annotations

from typing import Final

import orjson

from unigate_sim.compatible.core import (
    INNER_MODELS,
    CompatibleSimulator,
    ErrorKind,
    Profile,
    ProviderError,
)
from unigate_sim.openai.app import create_app

CHAT_MODELS: Final = (
    "@cf/meta/llama-3.1-8b-instruct",
    "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    "@cf/mistral/mistral-7b-instruct-v0.1",
    "@hf/nousresearch/hermes-2-pro-mistral-7b",
)
EMBEDDING_MODELS: Final = ("@cf/baai/bge-large-en-v1.5",)
_CODES: Final[dict[ErrorKind, int]] = {
    "invalid_url": 7003,
    "auth": 10000,
    "model_not_found": 5007,
    "invalid_request": 5006,
    "image_unsupported": 5006,
}


def _render(error: ProviderError) -> tuple[int, bytes]:
    body = {
        "result": None,
        "success": False,
        "errors": [{"code": _CODES[error.kind], "message": error.message}],
        "messages": [],
    }
    return error.status, orjson.dumps(body)


def profile(account_id: str) -> Profile:
    """Workers AI of one account: its paths are under that account id only."""
    return Profile(
        name="cloudflare",
        prefixes=(f"/client/v4/accounts/{account_id}/ai/v1",),
        endpoints=frozenset({"/chat/completions", "/embeddings"}),
        models={"/chat/completions": CHAT_MODELS, "/embeddings": EMBEDDING_MODELS},
        render_error=_render,
        messages={
            "invalid_url": "Could not route to {path}, perhaps your object identifier is invalid?",
            "auth": "Authentication error",
            "model_not_found": "No such model {model} or task",
            "invalid_request": "AiError: Bad input: {message}",
            "image_unsupported": "AiError: Bad input: Error: oneOf at '/' not met, 0 matches: "
            "Type mismatch of '/messages/0/content', 'array' not in 'string'",
        },
        vision_models=frozenset(),
        statuses={"auth": 401, "model_not_found": 400},
        stream_usage="last_chunk",
    )


def create_cloudflare_app(account_id: str, api_tokens: set[str]) -> CompatibleSimulator:
    """Workers AI for ``account_id``, accepting ``api_tokens``; ``state`` as the OpenAI-like
    simulators' (``calls`` with Cloudflare's paths, ``fail_next``, ``faults``)."""
    served = profile(account_id)
    inner = create_app(api_tokens, [*served.chat_models, *INNER_MODELS.values()])
    return CompatibleSimulator(served, inner)


__all__ = ["CHAT_MODELS", "EMBEDDING_MODELS", "create_cloudflare_app", "profile"]
