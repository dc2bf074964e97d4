"""Novita AI (One API's type 41): OpenAI-compatible API at ``https://api.novita.ai/v3/openai``
(``/chat/completions``, ``/embeddings``), ``org/model`` names, Bearer ``sk_`` keys; streams
take ``stream_options.include_usage``."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=41,
    name="Novita AI",
    default_base_url="https://api.novita.ai/v3/openai",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("meta-llama/llama-3.1-8b-instruct", "deepseek/deepseek-v3-0324"),
)

CHANNEL = declare_spec(SPEC, key_hint="sk_...", key_pattern=r"^sk_", gen_ai_system="novita")
