"""Google PaLM (channel type 11): PaLM 2 chat (``chat-bison-001``) through the PaLM API's
v1beta2 ``generateMessage``.

Modules: ``wire`` (the request and answer shapes), ``errors`` (Google's errors), ``adapter``
(the HTTP call, the answer as OpenAI's, the one-chunk stream, usage counted).
"""

from unigate_relay.providers.palm.adapter import PaLMProvider
from unigate_relay.providers.palm.declaration import CHANNELS

__all__ = ["CHANNELS", "PaLMProvider"]
