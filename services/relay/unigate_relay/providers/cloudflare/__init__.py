"""Cloudflare Workers AI (channel type 37) through its OpenAI-compatible endpoints.

Modules: ``wire`` (the account-scoped URLs, or an AI Gateway's), ``errors`` (Cloudflare's
error envelope), ``adapter`` (the OpenAI family's adapter with those two).
"""

from unigate_relay.providers.cloudflare.adapter import CloudflareProvider
from unigate_relay.providers.cloudflare.declaration import CHANNELS

__all__ = ["CHANNELS", "CloudflareProvider"]
