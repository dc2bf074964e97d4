"""What the Coze package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.coze.wire import DEFAULT_BASE_URL
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        34,
        "Coze",
        base_url=DEFAULT_BASE_URL,
        key_hint="pat_... (personal access token)",
        key_pattern=r"^pat_",
        config_hint='{"user_id": "<the user id Coze sees; default unigate>"}',
    ),
)
