"""DeepL (channel type 38): translation as a chat model (One API's mapping).

Modules: ``wire`` (the request and the target language from the model name), ``adapter``
(the HTTP call, the answer, DeepL's errors, usage in billed characters).
"""

from unigate_relay.providers.deepl.adapter import DeepLProvider
from unigate_relay.providers.deepl.declaration import CHANNELS

__all__ = ["CHANNELS", "DeepLProvider"]
