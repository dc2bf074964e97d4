"""What the iFlytek Spark package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration
from unigate_relay.providers.spark.models import DEFAULT_BASE_URL, MODELS

CHANNELS = (
    ChannelDeclaration(
        18,
        "iFlytek Spark",
        base_url=DEFAULT_BASE_URL,
        key_hint="APPID|APISecret|APIKey",
        key_pattern=r"^[^|]+\|[^|]+\|[^|]+$",
        key_parts=("APPID", "APISecret", "APIKey"),
        websocket=True,
        models=MODELS,
    ),
)
