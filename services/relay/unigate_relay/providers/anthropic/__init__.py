"""Anthropic Claude through the Messages API (channel type 14).

Modules: ``wire`` (paths, version, stop reasons, error types), ``models`` (output limits),
``request`` (OpenAI chat → Messages), ``response`` (Messages answer → OpenAI, usage),
``stream`` (Anthropic SSE events → OpenAI chunks), ``errors`` (failover and client errors),
``adapter`` (the HTTP transport). The conversions are plain functions on JSON objects so
other routes to Claude (Bedrock, Vertex) reuse them.
"""

from unigate_relay.providers.anthropic.adapter import AnthropicProvider
from unigate_relay.providers.anthropic.declaration import CHANNELS

__all__ = ["CHANNELS", "AnthropicProvider"]
