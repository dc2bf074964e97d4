"""What the Bedrock package declares about its channel types (see
``unigate_relay.providers.declaration``)."""

from __future__ import annotations

from unigate_relay.providers.declaration import ChannelDeclaration

CHANNELS = (
    ChannelDeclaration(
        33,
        "AWS Bedrock",
        key_hint="AccessKeyId|SecretAccessKey[|SessionToken]",
        key_parts=("AccessKeyId", "SecretAccessKey", "SessionToken"),
        config_hint='{"region": "us-east-1", "model_ids": {"<model>": "<Bedrock model id>"}}',
        gen_ai_system="aws.bedrock",
    ),
)
