"""What the Anthropic package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.anthropic.models import DEFAULT_MODELS
from unigate_relay.providers.anthropic.wire import DEFAULT_BASE_URL
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        14,
        "Anthropic Claude",
        base_url=DEFAULT_BASE_URL,
        key_hint="sk-ant-...",
        key_pattern=r"^sk-ant-",
        models=DEFAULT_MODELS,
    ),
)
