"""Baidu ERNIE / Qianfan (channel type 15): its own protocol, an OAuth access token per key."""

from unigate_relay.providers.baidu.adapter import BaiduProvider
from unigate_relay.providers.baidu.declaration import CHANNELS

__all__ = ["CHANNELS", "BaiduProvider"]
