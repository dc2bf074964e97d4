"""What the Vertex AI package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        42,
        "Google Vertex AI",
        # adapter.py builds it from the config's region ("global": aiplatform.googleapis.com).
        base_url_hint="https://{region}-aiplatform.googleapis.com",
        key_hint="Service account key file (JSON)",
        key_json_fields=("type", "project_id", "private_key", "client_email"),
        config_hint='{"region": "us-central1", "project_id": "(default: the key\'s project)"}',
    ),
)
