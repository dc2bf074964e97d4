"""Together AI (https://docs.together.ai/docs/openai-api-compatibility): OpenAI-style API
under ``/v1``, with ``/v1/rerank``."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=39,
    name="Together",
    default_base_url="https://api.together.xyz/v1",
    endpoints=frozenset(
        {"chat.completions", "completions", "embeddings", "rerank", "images.generations"}
    ),
    default_models=(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "Qwen/Qwen2.5-72B-Instruct-Turbo",
        "deepseek-ai/DeepSeek-V3",
    ),
)

CHANNEL = declare_spec(SPEC)
