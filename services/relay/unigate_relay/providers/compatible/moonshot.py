"""Moonshot / Kimi (https://platform.moonshot.cn/docs): OpenAI-style API under ``/v1``."""

from unigate_relay.providers.compatible.spec import CompatibleSpec

SPEC = CompatibleSpec(
    channel_type=25,
    name="Moonshot",
    default_base_url="https://api.moonshot.cn/v1",
    default_models=("moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k"),
)
