"""What the Replicate package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration
from unigate_relay.providers.replicate.wire import DEFAULT_BASE_URL

CHANNELS = (
    ChannelDeclaration(
        46,
        "Replicate",
        base_url=DEFAULT_BASE_URL,
        key_hint="r8_...",
        key_pattern=r"^r8_",
        models=(
            "meta/meta-llama-3-70b-instruct",
            "meta/meta-llama-3-8b-instruct",
            "mistralai/mixtral-8x7b-instruct-v0.1",
        ),
    ),
)
