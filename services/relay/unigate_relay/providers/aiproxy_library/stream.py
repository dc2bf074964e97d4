"""AI Proxy Library's ask stream as OpenAI chunks.

Reference: One API's adaptor (``relay/adaptor/aiproxy``): SSE ``data:`` lines, each a JSON
``{"content", "finish", "model", "documents"}`` — a piece of the answer, ``finish: true`` on
the last event, and the ``documents`` the answer drew on on an event that carries them. The
documents become the reference list appended after the answer (``wire.references``), in the
chunk that precedes the finish chunk.
"""

from __future__ import annotations

from typing import Any

from unigate_relay.providers.aiproxy_library.wire import references
from unigate_relay.providers.native_stream import ChunkTranslator


class LibraryTranslator(ChunkTranslator):
    """Ask events in, OpenAI chunks out. :attr:`text` keeps the answer only (what the
    library generated, for the estimate); the reference list is unigate's addition."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        super().__init__(id=id, model=model, created=created)
        self.documents: list[Any] = []

    def feed(self, payload: dict[str, Any]) -> bytes:
        documents = payload.get("documents")
        if isinstance(documents, list) and documents:
            self.documents = documents
        content = payload.get("content")
        out = self.delta(content, None) if isinstance(content, str) and content else b""
        if payload.get("finish") is not True:
            return out
        listed = references(self.documents)
        if listed:
            delta: dict[str, Any] = {"content": listed}
            if not self._opened:
                delta["role"] = "assistant"
                self._opened = True
            out += self.frame(delta)
        return out + self.finish("stop")
