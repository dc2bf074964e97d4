"""Protocol translation in the relay: the gateway's Anthropic Messages routes and the
Responses API served by a family that speaks only OpenAI chat.

``serving(provider, endpoint, channel_type)`` is what the relay server asks for each
request: the family itself when it serves the endpoint natively on that channel type
(Anthropic's own adapter serves ``messages``, OpenAI's and Azure's ``responses``), else a
:class:`MessagesOverChat` or a :class:`ResponsesOverChat` in front of its
``chat.completions`` (DeepSeek's, Mistral's, Claude's, Gemini's, ...), so every family,
present and future, serves ``/v1/messages`` and ``/v1/responses`` with no code of its own.
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


def serving(provider: Provider, endpoint: str, channel_type: int) -> Provider | None:
    """The provider that serves ``endpoint`` on ``provider``'s channels of ``channel_type``
    (None: none does)."""
    if provider.serves(endpoint, channel_type):
        return provider
    if provider.serves("chat.completions", channel_type):
        if endpoint in (MESSAGES, COUNT_TOKENS):
            return _wrapper(provider, MessagesOverChat)
        if endpoint in (RESPONSES, INPUT_TOKENS):
            return _wrapper(provider, ResponsesOverChat)
    # The family's own adapter refuses what one of its channel types lacks, by name.
    return provider if endpoint in provider.endpoints else None


__all__ = ["MessagesOverChat", "ResponsesOverChat", "serving"]
