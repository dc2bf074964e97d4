"""OpenRouter (https://openrouter.ai/docs/api-reference/overview): OpenAI-style API under
``/api/v1``; models are ``vendor/name`` ids. (One API numbers it 20.)"""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import BalanceApi, declare_spec

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

CHANNEL = declare_spec(
    SPEC,
    key_hint="sk-or-...",
    key_pattern=r"^sk-or-",
    balance=BalanceApi("openrouter", "/credits"),
)
