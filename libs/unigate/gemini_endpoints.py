"""The Gemini API's model methods as unigate's endpoints: the names the gateway, auth (the
output bound), the relay (native pass-through and translation) and the ledger use for
``POST /v1beta/models/{model}:{method}`` (https://ai.google.dev/api).

``streamGenerateContent`` is ``generateContent`` streamed (the request's ``stream`` flag), so
both are one endpoint, as chat completions are with and without ``stream``.
"""

from __future__ import annotations

from typing import Final

GENERATE: Final = "gemini.generate_content"
COUNT_TOKENS: Final = "gemini.count_tokens"
EMBED: Final = "gemini.embed_content"
BATCH_EMBED: Final = "gemini.batch_embed_contents"
ENDPOINTS: Final = frozenset({GENERATE, COUNT_TOKENS, EMBED, BATCH_EMBED})
EMBEDDING_ENDPOINTS: Final = frozenset({EMBED, BATCH_EMBED})

#: The method in a request's path → (endpoint, streamed).
METHODS: Final[dict[str, tuple[str, bool]]] = {
    "generateContent": (GENERATE, False),
    "streamGenerateContent": (GENERATE, True),
    "countTokens": (COUNT_TOKENS, False),
    "embedContent": (EMBED, False),
    "batchEmbedContents": (BATCH_EMBED, False),
}
#: The upstream method of an endpoint (unary; a stream is ``streamGenerateContent``).
UPSTREAM_METHOD: Final[dict[str, str]] = {
    GENERATE: "generateContent",
    COUNT_TOKENS: "countTokens",
    EMBED: "embedContent",
    BATCH_EMBED: "batchEmbedContents",
}


def is_gemini(endpoint: str) -> bool:
    """Whether ``endpoint`` is one of the Gemini-native routes."""
    return endpoint in ENDPOINTS
