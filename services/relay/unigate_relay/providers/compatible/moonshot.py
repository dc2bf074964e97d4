"""Moonshot / Kimi (https://platform.moonshot.cn/docs/api/chat): OpenAI-style API under
``/v1``, chat only. A stream reports usage inside the choice, ``choices[0].usage`` of the chunk
carrying ``finish_reason``, and never in a top-level usage chunk (northes/go-moonshot#17,
higress-group/higress#1568); cached prompt tokens are a top-level ``cached_tokens``."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import BalanceApi, declare_spec

SPEC = CompatibleSpec(
    channel_type=25,
    name="Moonshot",
    default_base_url="https://api.moonshot.cn/v1",
    stream_usage_path=("choices", "0", "usage"),
    default_models=(
        "moonshot-v1-8k",
        "moonshot-v1-32k",
        "moonshot-v1-128k",
        "moonshot-v1-8k-vision-preview",
    ),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="sk-...",
    key_pattern=r"^sk-",
    balance=BalanceApi("moonshot", "/users/me/balance"),
)
