"""What the AI Proxy Library package declares about its channel type (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.aiproxy_library.wire import DEFAULT_BASE_URL
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        21,
        "AI Proxy Library",
        base_url=DEFAULT_BASE_URL,
        key_hint="aiproxy.io API key",
        config_hint='{"library_id": "<the knowledge base (library) id>"}',
        gen_ai_system="aiproxy",
        models=("gpt-3.5-turbo", "gpt-4"),
    ),
)
