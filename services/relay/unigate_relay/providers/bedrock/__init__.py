"""Claude on AWS Bedrock (channel type 33), through the Bedrock runtime's InvokeModel and
InvokeModelWithResponseStream.

Modules: ``wire`` (endpoint, body version, model ids), ``signing`` (the channel key as AWS
credentials, SigV4 with botocore), ``eventstream`` (the binary response stream, decoded with
botocore), ``errors`` (Bedrock's exceptions for failover and for the client), ``adapter`` (the
HTTP transport). The Messages conversions are the Anthropic family's.
"""

from unigate_relay.providers.bedrock.adapter import BedrockProvider
from unigate_relay.providers.bedrock.declaration import CHANNELS

__all__ = ["CHANNELS", "BedrockProvider"]
