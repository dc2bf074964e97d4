"""What the DashScope package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

# Qwen channels (type 17) whose config says {"protocol": "native"}.
CHANNELS = (
    ChannelDeclaration(1017, "Qwen (DashScope native protocol)", variant_of=(17, "native")),
)
