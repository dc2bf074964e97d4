"""Replicate language models (channel type 46) through the predictions API.

Modules: ``wire`` (paths and the prediction input), ``errors`` (problem details and failed
predictions), ``adapter`` (create, wait or poll, stream, metrics).
"""

from unigate_relay.providers.replicate.adapter import ReplicateProvider
from unigate_relay.providers.replicate.declaration import CHANNELS

__all__ = ["CHANNELS", "ReplicateProvider"]
