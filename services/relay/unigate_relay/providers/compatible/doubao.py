"""Doubao on Volcengine Ark (https://www.volcengine.com/docs/82379): OpenAI-style API under
``/api/v3``. Models are the operator's inference endpoint ids (``ep-2024...``), so there is no
useful default list: the channel's model mapping names them."""

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=40,
    name="Doubao (Volcengine Ark)",
    default_base_url="https://ark.cn-beijing.volces.com/api/v3",
    endpoints=CHAT_AND_EMBEDDINGS,
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="Ark API key",
)
