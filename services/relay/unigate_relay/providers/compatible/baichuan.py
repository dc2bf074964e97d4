"""Baichuan (https://platform.baichuan-ai.com/docs/api): OpenAI-style API under ``/v1``, with
embeddings; a stream's finishing chunk carries the usage."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=26,
    name="Baichuan",
    default_base_url="https://api.baichuan-ai.com/v1",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("Baichuan4-Turbo", "Baichuan4-Air", "Baichuan4", "Baichuan-Text-Embedding"),
)

CHANNEL = declare_spec(SPEC, key_hint="sk-...", key_pattern=r"^sk-", gen_ai_system="baichuan")
