"""Tencent Hunyuan (channel type 23): Tencent Cloud API 3.0, signed with TC3-HMAC-SHA256."""

from unigate_relay.providers.hunyuan.adapter import HunyuanProvider
from unigate_relay.providers.hunyuan.declaration import CHANNELS

__all__ = ["CHANNELS", "HunyuanProvider"]
