"""What the Tencent Hunyuan package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration
from unigate_relay.providers.hunyuan.adapter import DEFAULT_BASE_URL

CHANNELS = (
    ChannelDeclaration(
        23,
        "Tencent Hunyuan",
        base_url=DEFAULT_BASE_URL,
        key_hint="SecretId|SecretKey",
        key_pattern=r"^[^|]+\|[^|]+$",
        key_parts=("SecretId", "SecretKey"),
    ),
)
