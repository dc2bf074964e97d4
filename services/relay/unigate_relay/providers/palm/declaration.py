"""What the PaLM package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration
from unigate_relay.providers.palm.wire import CHAT_MODEL, DEFAULT_BASE_URL

CHANNELS = (
    ChannelDeclaration(
        11,
        "Google PaLM",
        base_url=DEFAULT_BASE_URL,
        key_hint="AIza...",
        key_pattern=r"^AIza",
        config_hint="PaLM 2 chat (v1beta2 generateMessage); One API's PaLM-2 calls " + CHAT_MODEL,
        models=("PaLM-2", CHAT_MODEL),
    ),
)
