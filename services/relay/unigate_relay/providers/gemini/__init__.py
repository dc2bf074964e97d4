"""Google Gemini (channel type 24): OpenAI requests translated to the Gemini API.

Modules: ``wire`` (the Gemini shapes), ``schema`` (JSON Schema → Gemini Schema), ``ids``
(tool call ids), ``request`` (OpenAI → Gemini), ``response`` (Gemini → OpenAI), ``stream``
(SSE translation), ``errors`` (Google errors), ``models``, ``adapter`` (the provider).
"""

from unigate_relay.providers.gemini.adapter import GeminiProvider
from unigate_relay.providers.gemini.declaration import CHANNELS

__all__ = ["CHANNELS", "GeminiProvider"]
