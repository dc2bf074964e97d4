"""Baidu ERNIE / Qianfan (channel type 15): its own protocol, an OAuth access token per key."""

from unigate_relay.providers.baidu.adapter import BaiduProvider

__all__ = ["BaiduProvider"]
