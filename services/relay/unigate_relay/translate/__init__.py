"""Protocol translation in the relay: the gateway's Anthropic Messages routes, the Responses
API and the Gemini-native routes served by a family that speaks only OpenAI's chat
completions (and embeddings).

``serving(provider, endpoint, channel_type, upstream_model)`` is what the relay server asks
for each request: the family itself when it serves the endpoint natively on that channel type
for that model (Anthropic's own adapter serves ``messages``, OpenAI's and Azure's
``responses``, Gemini's and Vertex's the Gemini routes), else a translating wrapper in front
of its ``chat.completions`` (:class:`MessagesOverChat`, :class:`ResponsesOverChat`) or its
chat completions and embeddings (:class:`GeminiOverOpenAI`), so every family, present and
future, serves every protocol with no code of its own.
"""

from __future__ import annotations

from unigate import gemini_endpoints as gemini
from unigate_relay.providers.anthropic.wire import COUNT_TOKENS, MESSAGES
from unigate_relay.providers.base import Provider
from unigate_relay.translate.gemini_provider import GeminiOverOpenAI
from unigate_relay.translate.provider import MessagesOverChat
from unigate_relay.translate.responses_provider import (
    INPUT_TOKENS,
    RESPONSES,
    ResponsesOverChat,
)

_MESSAGES = frozenset({MESSAGES, COUNT_TOKENS})
_RESPONSES = frozenset({RESPONSES, INPUT_TOKENS})
# What each translated endpoint runs on the family underneath.
_NEEDS: dict[str, str] = {
    MESSAGES: "chat.completions",
    COUNT_TOKENS: "chat.completions",
    RESPONSES: "chat.completions",
    INPUT_TOKENS: "chat.completions",
    gemini.GENERATE: "chat.completions",
    gemini.COUNT_TOKENS: "chat.completions",
    gemini.EMBED: "embeddings",
    gemini.BATCH_EMBED: "embeddings",
}
_wrappers: dict[tuple[int, str], Provider] = {}


def _wrap(provider: Provider, kind: str) -> Provider:
    if kind == "messages":
        return MessagesOverChat(provider)
    if kind == "responses":
        return ResponsesOverChat(provider)
    return GeminiOverOpenAI(provider)


def serving(
    provider: Provider, endpoint: str, channel_type: int, upstream_model: str = ""
) -> Provider | None:
    """The provider that serves ``endpoint`` on ``provider``'s channels of ``channel_type``
    for ``upstream_model`` (None: none does)."""
    if provider.serves(endpoint, channel_type, upstream_model):
        return provider
    needs = _NEEDS.get(endpoint)
    if needs is not None and provider.serves(needs, channel_type, upstream_model):
        kind = (
            "messages"
            if endpoint in _MESSAGES
            else "responses"
            if endpoint in _RESPONSES
            else "gemini"
        )
        wrapper = _wrappers.get((id(provider), kind))
        if wrapper is None or getattr(wrapper, "inner", None) is not provider:
            wrapper = _wrappers[(id(provider), kind)] = _wrap(provider, kind)
        return wrapper
    # The family's own adapter refuses what one of its channel types lacks, by name.
    return provider if endpoint in provider.endpoints else None


__all__ = ["GeminiOverOpenAI", "MessagesOverChat", "ResponsesOverChat", "serving"]
