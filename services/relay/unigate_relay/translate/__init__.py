"""Protocol translation in the relay: the gateway's Anthropic Messages routes served by a
family that speaks only OpenAI chat.

``serving(provider, endpoint)`` is what the relay server asks for each request: the family
itself when it serves the endpoint natively (Anthropic's own adapter serves ``messages``),
else a :class:`MessagesOverChat` in front of its ``chat.completions``, so every family,
present and future, serves ``/v1/messages`` with no code of its own.
"""

from __future__ import annotations

from unigate_relay.providers.anthropic.wire import COUNT_TOKENS, MESSAGES
from unigate_relay.providers.base import Provider
from unigate_relay.translate.provider import MessagesOverChat

_TRANSLATED = frozenset({MESSAGES, COUNT_TOKENS})
_wrappers: dict[int, MessagesOverChat] = {}


def serving(provider: Provider, endpoint: str) -> Provider | None:
    """The provider that serves ``endpoint`` on ``provider``'s channels (None: none does)."""
    if endpoint in provider.endpoints:
        return provider
    if endpoint in _TRANSLATED and "chat.completions" in provider.endpoints:
        wrapper = _wrappers.get(id(provider))
        if wrapper is None or wrapper.inner is not provider:
            wrapper = _wrappers[id(provider)] = MessagesOverChat(provider)
        return wrapper
    return None


__all__ = ["MessagesOverChat", "serving"]
