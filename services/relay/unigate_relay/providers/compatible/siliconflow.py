"""SiliconFlow (https://docs.siliconflow.cn/cn/api-reference): OpenAI-style API under ``/v1``,
with ``/v1/rerank`` and ``/v1/embeddings``; models are ``org/name`` ids."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import BalanceApi, declare_spec

SPEC = CompatibleSpec(
    channel_type=44,
    name="SiliconFlow",
    default_base_url="https://api.siliconflow.cn/v1",
    endpoints=frozenset({"chat.completions", "embeddings", "rerank", "images.generations"}),
    default_models=(
        "deepseek-ai/DeepSeek-V3",
        "Qwen/Qwen2.5-72B-Instruct",
        "BAAI/bge-m3",
        "BAAI/bge-reranker-v2-m3",
    ),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="sk-...",
    key_pattern=r"^sk-",
    balance=BalanceApi("siliconflow", "/user/info"),
)
