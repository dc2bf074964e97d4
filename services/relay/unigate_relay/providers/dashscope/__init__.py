"""Alibaba DashScope's native text-generation protocol (type 17 with ``protocol: native``)."""

from unigate_relay.providers.dashscope.adapter import DashScopeProvider
from unigate_relay.providers.dashscope.declaration import CHANNELS

__all__ = ["CHANNELS", "DashScopeProvider"]
