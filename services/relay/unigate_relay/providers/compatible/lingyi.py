"""Lingyi Wanwu / 01.AI (https://platform.lingyiwanwu.com/docs): OpenAI-style API under
``/v1``."""

from unigate_relay.providers.compatible.spec import CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

SPEC = CompatibleSpec(
    channel_type=31,
    name="Lingyi Wanwu",
    default_base_url="https://api.lingyiwanwu.com/v1",
    default_models=("yi-lightning", "yi-large", "yi-medium", "yi-vision"),
)

CHANNEL = declare_spec(SPEC)
