"""What the Cohere package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (ChannelDeclaration(35, "Cohere"),)
