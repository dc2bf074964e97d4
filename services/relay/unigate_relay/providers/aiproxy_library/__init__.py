"""AI Proxy Library (channel type 21): aiproxy.io's knowledge-base question answering.

Modules: ``wire`` (the ask request and the reference list), ``stream`` (its events as OpenAI
chunks), ``errors`` (``{"success": false, "errCode", "message"}``), ``adapter`` (the HTTP
transport).
"""

from unigate_relay.providers.aiproxy_library.adapter import AIProxyLibraryProvider
from unigate_relay.providers.aiproxy_library.declaration import CHANNELS

__all__ = ["CHANNELS", "AIProxyLibraryProvider"]
