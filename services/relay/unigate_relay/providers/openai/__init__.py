"""OpenAI and every provider that speaks its protocol as-is."""

from unigate_relay.providers.openai.adapter import OpenAIProvider
from unigate_relay.providers.openai.declaration import CHANNELS

__all__ = ["CHANNELS", "OpenAIProvider"]
