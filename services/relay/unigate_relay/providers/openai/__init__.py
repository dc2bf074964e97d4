"""OpenAI and every provider that speaks its protocol as-is."""

from unigate_relay.providers.openai.adapter import OpenAIProvider

__all__ = ["OpenAIProvider"]
