"""DeepSeek (https://api-docs.deepseek.com): API rooted at the bare host (``/chat/completions``;
``/v1`` is accepted as an alias). ``deepseek-reasoner`` streams ``reasoning_content`` deltas
before the answer; usage reports cache hits as ``prompt_cache_hit_tokens`` (counted as cached
tokens by the usage parser). JSON mode only: ``response_format`` ``json_schema`` is refused
("This response_format type is unavailable now"), so it goes as ``json_object`` with the
schema in the prompt (api-docs.deepseek.com/guides/json_mode)."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import BalanceApi, declare_spec

SPEC = CompatibleSpec(
    channel_type=36,
    name="DeepSeek",
    default_base_url="https://api.deepseek.com",
    default_models=("deepseek-chat", "deepseek-reasoner"),
    response_format="json_object",
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="sk-...",
    key_pattern=r"^sk-",
    balance=BalanceApi("deepseek", "/user/balance", strip_v1=True),
    gen_ai_system="deepseek",
)
