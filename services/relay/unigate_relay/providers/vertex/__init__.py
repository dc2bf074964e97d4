"""Google Vertex AI (channel type 42): Gemini models with service-account OAuth.

Modules: ``credentials`` (service account JWT and the access token cache), ``adapter`` (the
provider, reusing the Gemini family's conversion).
"""

from unigate_relay.providers.vertex.adapter import VertexProvider
from unigate_relay.providers.vertex.declaration import CHANNELS

__all__ = ["CHANNELS", "VertexProvider"]
