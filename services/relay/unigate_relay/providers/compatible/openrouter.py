"""OpenRouter (https://openrouter.ai/docs/api-reference/overview): OpenAI-style API under
``/api/v1``; models are ``vendor/name`` ids. (One API numbers it 20.)"""

from unigate_relay.providers.compatible.spec import CompatibleSpec

SPEC = CompatibleSpec(
    channel_type=20,
    name="OpenRouter",
    default_base_url="https://openrouter.ai/api/v1",
    endpoints=frozenset({"chat.completions", "completions"}),
    default_models=(
        "openai/gpt-4o-mini",
        "anthropic/claude-3.5-sonnet",
        "meta-llama/llama-3.3-70b-instruct",
    ),
)
