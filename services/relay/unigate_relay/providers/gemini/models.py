"""The Gemini models a Gemini API or Vertex AI channel serves by default (One API's
``relay/adaptor/gemini/constants.go`` list, updated from https://ai.google.dev/gemini-api/docs/
models): what ``unigate channel add`` suggests and what embeddings are recognised by."""

from __future__ import annotations

from typing import Final

CHAT_MODELS: Final = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
)
EMBEDDING_MODELS: Final = ("gemini-embedding-001", "text-embedding-004")
MODELS: Final = CHAT_MODELS + EMBEDDING_MODELS
