"""Provider adapters. Adding a provider: one package here and one line in ``REGISTRY``."""

from __future__ import annotations

from unigate_relay.providers.base import Provider
from unigate_relay.providers.openai import OpenAIProvider

REGISTRY: dict[str, type[Provider]] = {
    OpenAIProvider.family: OpenAIProvider,
}


def load(families: list[str]) -> list[Provider]:
    unknown = [f for f in families if f not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown provider families: {', '.join(unknown)}")
    return [REGISTRY[f]() for f in families]
