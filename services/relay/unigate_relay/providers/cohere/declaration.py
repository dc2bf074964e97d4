"""What the Cohere package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.cohere.adapter import DEFAULT_BASE_URL
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (ChannelDeclaration(35, "Cohere", base_url=DEFAULT_BASE_URL),)
