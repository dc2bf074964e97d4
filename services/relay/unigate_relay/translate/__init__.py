"""Protocol translation in the relay: the gateway's Anthropic Messages routes and the
Responses API served by a family that speaks only OpenAI chat.

``serving(provider, endpoint)`` is what the relay server asks for each request: the family
itself when it serves the endpoint natively (Anthropic's own adapter serves ``messages``,
OpenAI's and Azure's ``responses``), else a :class:`MessagesOverChat` or a
:class:`ResponsesOverChat` in front of its ``chat.completions``, so every family, present
and future, serves ``/v1/messages`` and ``/v1/responses`` with no code of its own.
"""

from __future__ import annotations

from unigate_relay.providers.anthropic.wire import COUNT_TOKENS, MESSAGES
from unigate_relay.providers.base import Provider
from unigate_relay.translate.provider import MessagesOverChat
from unigate_relay.translate.responses_provider import (
    INPUT_TOKENS,
    RESPONSES,
    ResponsesOverChat,
)

_wrappers: dict[tuple[int, type[Provider]], Provider] = {}


def _wrapper(provider: Provider, kind: type[MessagesOverChat | ResponsesOverChat]) -> Provider:
    wrapper = _wrappers.get((id(provider), kind))
    if not isinstance(wrapper, kind) or wrapper.inner is not provider:
        wrapper = _wrappers[(id(provider), kind)] = kind(provider)
    return wrapper


def serving(provider: Provider, endpoint: str) -> Provider | None:
    """The provider that serves ``endpoint`` on ``provider``'s channels (None: none does)."""
    if endpoint in provider.endpoints:
        return provider
    if "chat.completions" not in provider.endpoints:
        return None
    if endpoint in (MESSAGES, COUNT_TOKENS):
        return _wrapper(provider, MessagesOverChat)
    if endpoint in (RESPONSES, INPUT_TOKENS):
        return _wrapper(provider, ResponsesOverChat)
    return None


__all__ = ["MessagesOverChat", "ResponsesOverChat", "serving"]
