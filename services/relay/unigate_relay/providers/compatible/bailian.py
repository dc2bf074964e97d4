"""Alibaba Cloud Model Studio, "Bailian" (One API's type 49): DashScope's OpenAI-compatible
mode (https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope) under
a channel type of its own, as One API lists it; the wire is type 17's."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=49,
    name="Alibaba Bailian",
    default_base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("qwen-turbo", "qwen-plus", "qwen-max", "text-embedding-v3"),
)

CHANNEL = declare_spec(SPEC, key_hint="sk-...", key_pattern=r"^sk-", gen_ai_system="qwen")
