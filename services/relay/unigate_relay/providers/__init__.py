"""Provider adapters. Adding a provider: one package here and one line in ``REGISTRY``."""

from __future__ import annotations

from unigate_relay.providers.anthropic import AnthropicProvider
from unigate_relay.providers.baidu import BaiduProvider
from unigate_relay.providers.base import Provider
from unigate_relay.providers.bedrock import BedrockProvider
from unigate_relay.providers.cohere import CohereProvider
from unigate_relay.providers.dashscope import DashScopeProvider
from unigate_relay.providers.gemini import GeminiProvider
from unigate_relay.providers.hunyuan import HunyuanProvider
from unigate_relay.providers.openai import OpenAIProvider
from unigate_relay.providers.spark import SparkProvider
from unigate_relay.providers.vertex import VertexProvider

REGISTRY: dict[str, type[Provider]] = {
    OpenAIProvider.family: OpenAIProvider,
    SparkProvider.family: SparkProvider,
    CohereProvider.family: CohereProvider,
    GeminiProvider.family: GeminiProvider,
    VertexProvider.family: VertexProvider,
    AnthropicProvider.family: AnthropicProvider,
    BedrockProvider.family: BedrockProvider,
    BaiduProvider.family: BaiduProvider,
    HunyuanProvider.family: HunyuanProvider,
    DashScopeProvider.family: DashScopeProvider,
}


def load(families: list[str]) -> list[Provider]:
    unknown = [f for f in families if f not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown provider families: {', '.join(unknown)}")
    return [REGISTRY[f]() for f in families]
