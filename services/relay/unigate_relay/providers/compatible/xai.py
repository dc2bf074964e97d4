"""xAI (https://docs.x.ai/docs/api-reference): OpenAI-style API under ``/v1``; reasoning
models stream ``reasoning_content`` deltas."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=45,
    name="xAI",
    default_base_url="https://api.x.ai/v1",
    endpoints=CHAT_AND_EMBEDDINGS | {"images.generations"},
    default_models=("grok-2", "grok-2-vision", "grok-3", "grok-3-mini"),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="xai-...",
    key_pattern=r"^xai-",
    gen_ai_system="xai",
)
