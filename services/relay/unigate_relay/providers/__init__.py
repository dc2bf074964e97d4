"""Provider adapters. Adding a provider: one package here (its adapter and its
``declaration.py``) and one line in ``PACKAGES``, then ``make providers`` to regenerate the
catalog the other services read (``libs/unigate/provider_catalog.json``)."""

from __future__ import annotations

from unigate_relay.providers import (
    aiproxy_library,
    anthropic,
    baidu,
    bedrock,
    cloudflare,
    cohere,
    coze,
    dashscope,
    deepl,
    gemini,
    hunyuan,
    openai,
    palm,
    replicate,
    spark,
    vertex,
)
from unigate_relay.providers.base import Provider
from unigate_relay.providers.declaration import ProviderPackage

PACKAGES: tuple[ProviderPackage, ...] = (
    ProviderPackage(openai.OpenAIProvider, openai.CHANNELS),
    ProviderPackage(spark.SparkProvider, spark.CHANNELS),
    ProviderPackage(cohere.CohereProvider, cohere.CHANNELS),
    ProviderPackage(gemini.GeminiProvider, gemini.CHANNELS),
    ProviderPackage(vertex.VertexProvider, vertex.CHANNELS),
    ProviderPackage(anthropic.AnthropicProvider, anthropic.CHANNELS),
    ProviderPackage(bedrock.BedrockProvider, bedrock.CHANNELS),
    ProviderPackage(baidu.BaiduProvider, baidu.CHANNELS),
    ProviderPackage(hunyuan.HunyuanProvider, hunyuan.CHANNELS),
    ProviderPackage(dashscope.DashScopeProvider, dashscope.CHANNELS),
    ProviderPackage(cloudflare.CloudflareProvider, cloudflare.CHANNELS),
    ProviderPackage(coze.CozeProvider, coze.CHANNELS),
    ProviderPackage(deepl.DeepLProvider, deepl.CHANNELS),
    ProviderPackage(replicate.ReplicateProvider, replicate.CHANNELS),
    ProviderPackage(palm.PaLMProvider, palm.CHANNELS),
    ProviderPackage(aiproxy_library.AIProxyLibraryProvider, aiproxy_library.CHANNELS),
)

REGISTRY: dict[str, type[Provider]] = {p.family: p.provider for p in PACKAGES}


def load(families: list[str]) -> list[Provider]:
    unknown = [f for f in families if f not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown provider families: {', '.join(unknown)}")
    return [REGISTRY[f]() for f in families]
