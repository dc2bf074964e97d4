"""What the Cloudflare package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.cloudflare.wire import SPEC
from unigate_relay.providers.declaration import declare_spec

CHANNELS = (
    declare_spec(
        SPEC,
        key_hint="Workers AI API token",
        config_hint='{"account_id": "<Cloudflare account id>"}',
        gen_ai_system="cloudflare",
    ),
)
