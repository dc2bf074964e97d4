"""Qwen through DashScope's OpenAI-compatible mode
(https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope): base
``/compatible-mode/v1``; streams take ``stream_options.include_usage``."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=17,
    name="Qwen (DashScope compatible mode)",
    default_base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("qwen-turbo", "qwen-plus", "qwen-max", "text-embedding-v3"),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="sk-...",
    key_pattern=r"^sk-",
    config_hint='{"protocol": "native"} to use DashScope\'s own protocol',
)
