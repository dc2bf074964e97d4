"""Cohere (channel type 35): the v2 API (chat, embed, rerank) with a bearer key."""

from unigate_relay.providers.cohere.adapter import CohereProvider
from unigate_relay.providers.cohere.declaration import CHANNELS

__all__ = ["CHANNELS", "CohereProvider"]
