"""What the Baidu package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.baidu.adapter import DEFAULT_BASE_URL
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        15,
        "Baidu ERNIE (Qianfan)",
        base_url=DEFAULT_BASE_URL,
        key_hint="APIKey|SecretKey",
        key_pattern=r"^[^|]+\|[^|]+$",
        key_parts=("API Key", "Secret Key"),
    ),
)
