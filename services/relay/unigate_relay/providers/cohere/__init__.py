"""Cohere (channel type 35): the v2 API (chat, embed, rerank) with a bearer key."""

from unigate_relay.providers.cohere.adapter import CohereProvider

__all__ = ["CohereProvider"]
