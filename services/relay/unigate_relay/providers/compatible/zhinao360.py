"""360 Zhinao (https://ai.360.com/platform/docs): OpenAI-style API under ``/v1``."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=19,
    name="360 Zhinao",
    default_base_url="https://ai.360.cn/v1",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("360gpt-pro", "360gpt-turbo", "360gpt2-pro", "embedding-bert-512-v1"),
)

CHANNEL = declare_spec(SPEC)
