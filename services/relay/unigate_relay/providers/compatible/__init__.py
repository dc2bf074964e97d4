"""Providers that speak the OpenAI protocol with their own base URL, path layout and quirks.

Adding one: a module here defining ``SPEC`` and one line in ``SPECS``.
"""

from __future__ import annotations

from unigate_relay.providers.compatible import (
    azure,
    deepseek,
    doubao,
    groq,
    lingyi,
    mistral,
    moonshot,
    ollama,
    openrouter,
    qwen,
    siliconflow,
    stepfun,
    together,
    xai,
    zhinao360,
    zhipu,
)
from unigate_relay.providers.compatible.spec import ENDPOINT_PATHS, CompatibleSpec

SPECS: dict[int, CompatibleSpec] = {
    spec.channel_type: spec
    for spec in (
        azure.SPEC,
        deepseek.SPEC,
        moonshot.SPEC,
        zhipu.SPEC,
        qwen.SPEC,
        zhinao360.SPEC,
        mistral.SPEC,
        groq.SPEC,
        ollama.SPEC,
        xai.SPEC,
        siliconflow.SPEC,
        together.SPEC,
        openrouter.SPEC,
        stepfun.SPEC,
        lingyi.SPEC,
        doubao.SPEC,
    )
}

__all__ = ["ENDPOINT_PATHS", "SPECS", "CompatibleSpec"]
