"""Zhipu GLM v4 (https://open.bigmodel.cn/dev/api): OpenAI-style API under ``/api/paas/v4``
(``/api/paas/v4/chat/completions``, ``/api/paas/v4/embeddings``)."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=16,
    name="Zhipu GLM v4",
    default_base_url="https://open.bigmodel.cn/api/paas/v4",
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=("glm-4-plus", "glm-4-air", "glm-4-flash", "glm-4-long", "embedding-3"),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="id.secret",
    key_pattern=r"^[^.]+\.[^.]+$",
)
