"""What the Gemini package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration
from unigate_relay.providers.gemini.adapter import DEFAULT_BASE_URL
from unigate_relay.providers.gemini.models import MODELS

CHANNELS = (
    ChannelDeclaration(
        24,
        "Google Gemini",
        base_url=DEFAULT_BASE_URL,
        key_hint="AIza...",
        key_pattern=r"^AIza",
        models=MODELS,
    ),
)
