"""What the Bedrock package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.bedrock.wire import DEFAULT_REGION
from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        33,
        "AWS Bedrock",
        # wire.invoke_url / converse_url build it from the config's region.
        base_url_hint="https://bedrock-runtime.{region}.amazonaws.com",
        key_hint="AccessKeyId|SecretAccessKey[|SessionToken]",
        # An access key id is 16 to 128 upper-case letters and digits (AKIA..., ASIA...);
        # temporary credentials add the session token.
        key_pattern=r"^[A-Z0-9]{16,128}\|[^|]+(\|[^|]+)?$",
        key_parts=("AccessKeyId", "SecretAccessKey", "SessionToken (optional)"),
        config_hint=(
            f'{{"region": "{DEFAULT_REGION}", "model_ids": {{"<model>": "<Bedrock model id>"}}}}'
        ),
        gen_ai_system="aws.bedrock",
    ),
)
