"""Providers that speak the OpenAI protocol with their own base URL, path layout and quirks.

Adding one: a module here defining ``SPEC`` (the wire) and ``CHANNEL`` (its declaration:
``unigate_relay.providers.declaration``), and one line in ``MODULES``. ``resellers`` declares
One API's OpenAI resellers together: their wire is OpenAI's, only the host differs.
"""

from __future__ import annotations

from unigate_relay.providers.compatible import (
    azure,
    baichuan,
    bailian,
    deepseek,
    doubao,
    fastgpt,
    gemini_openai,
    groq,
    lingyi,
    minimax,
    mistral,
    moonshot,
    novita,
    ollama,
    openrouter,
    qianfan_v2,
    qwen,
    resellers,
    siliconflow,
    spark,
    stepfun,
    together,
    xai,
    zhinao360,
    zhipu,
)
from unigate_relay.providers.compatible.spec import ENDPOINT_PATHS, CompatibleSpec
from unigate_relay.providers.declaration import ChannelDeclaration

MODULES = (
    azure,
    deepseek,
    moonshot,
    zhipu,
    qwen,
    zhinao360,
    mistral,
    groq,
    ollama,
    xai,
    siliconflow,
    together,
    openrouter,
    stepfun,
    lingyi,
    doubao,
    baichuan,
    bailian,
    gemini_openai,
    novita,
    minimax,
    spark,
    qianfan_v2,
    fastgpt,
)

SPECS: dict[int, CompatibleSpec] = {
    **{m.SPEC.channel_type: m.SPEC for m in MODULES},
    **{spec.channel_type: spec for spec in resellers.SPECS},
}
CHANNELS: tuple[ChannelDeclaration, ...] = (
    *(m.CHANNEL for m in MODULES),
    *resellers.CHANNELS,
)

__all__ = ["CHANNELS", "ENDPOINT_PATHS", "SPECS", "CompatibleSpec"]
