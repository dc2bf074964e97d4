"""What the Vertex AI package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (ChannelDeclaration(42, "Google Vertex AI"),)
