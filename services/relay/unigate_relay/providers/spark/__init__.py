"""iFlytek Spark (channel type 18): a signed WebSocket URL per call, one request frame, the
answer in frames with status 0/1/2."""

from unigate_relay.providers.spark.adapter import SparkProvider
from unigate_relay.providers.spark.declaration import CHANNELS

__all__ = ["CHANNELS", "SparkProvider"]
