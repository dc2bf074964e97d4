"""Coze bots (channel type 34) through Coze's v3 chat API; the model is the bot id.

Modules: ``wire`` (the request), ``stream`` (the events as OpenAI chunks), ``errors``
(Coze's ``{"code", "msg"}``), ``adapter`` (the HTTP transport).
"""

from unigate_relay.providers.coze.adapter import CozeProvider
from unigate_relay.providers.coze.declaration import CHANNELS

__all__ = ["CHANNELS", "CozeProvider"]
