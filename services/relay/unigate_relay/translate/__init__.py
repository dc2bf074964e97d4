"""Protocol translation in the relay: the gateway's Anthropic Messages and Gemini-native
routes served by a family that speaks only OpenAI's chat completions (and embeddings).

``serving(provider, endpoint, upstream_model)`` is what the relay server asks for each
request: the family itself when it serves the endpoint natively (Anthropic's own adapter
serves ``messages``, Gemini's and Vertex's the Gemini routes), else a translating wrapper in
front of its ``chat.completions`` (:class:`MessagesOverChat`) or its chat completions and
embeddings (:class:`GeminiOverOpenAI`), so every family, present and future, serves both
protocols with no code of its own.
"""

from __future__ import annotations

from unigate import gemini_endpoints as gemini
from unigate_relay.providers.anthropic.wire import COUNT_TOKENS, MESSAGES
from unigate_relay.providers.base import Provider
from unigate_relay.translate.gemini_provider import GeminiOverOpenAI
from unigate_relay.translate.provider import MessagesOverChat

_MESSAGES = frozenset({MESSAGES, COUNT_TOKENS})
# What each translated endpoint runs on the family underneath.
_NEEDS: dict[str, str] = {
    MESSAGES: "chat.completions",
    COUNT_TOKENS: "chat.completions",
    gemini.GENERATE: "chat.completions",
    gemini.COUNT_TOKENS: "chat.completions",
    gemini.EMBED: "embeddings",
    gemini.BATCH_EMBED: "embeddings",
}
_wrappers: dict[tuple[int, str], Provider] = {}


def serving(provider: Provider, endpoint: str, upstream_model: str = "") -> Provider | None:
    """The provider that serves ``endpoint`` on ``provider``'s channels for
    ``upstream_model`` (None: none does)."""
    if provider.serves(endpoint, upstream_model):
        return provider
    needs = _NEEDS.get(endpoint)
    if needs is None or needs not in provider.endpoints:
        return None
    kind = "messages" if endpoint in _MESSAGES else "gemini"
    wrapper = _wrappers.get((id(provider), kind))
    if wrapper is None or getattr(wrapper, "inner", None) is not provider:
        wrapper = MessagesOverChat(provider) if kind == "messages" else GeminiOverOpenAI(provider)
        _wrappers[(id(provider), kind)] = wrapper
    return wrapper


__all__ = ["GeminiOverOpenAI", "MessagesOverChat", "serving"]
