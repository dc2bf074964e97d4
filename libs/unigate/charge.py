"""What a call costs: the usage the relay reported, at the prices auth captured when it
authorized the call (so a price change mid-request does not apply to it)."""

from __future__ import annotations

from fractions import Fraction

from unigate.pricing import (
    DEFAULT_AUDIO_COMPLETION_RATIO,
    DEFAULT_AUDIO_RATIO,
    DEFAULT_CACHE_WRITE_RATIO,
    Price,
    quota_for,
)
from unigate.unit_prices import unit_quota
from unigate.v1 import auth_pb2, common_pb2


def price_of(p: auth_pb2.Pricing) -> Price:
    """The price auth sent. A cache-write ratio it left unset (an auth from before cache
    writes were priced, during a rolling upgrade) is 1, a write billed as plain input as it
    was then, never proto3's 0 (a free write)."""
    return Price(
        p.model_ratio,
        p.completion_ratio,
        p.group_ratio,
        p.cached_ratio,
        cache_write_5m_ratio=(
            p.cache_write_5m_ratio
            if p.HasField("cache_write_5m_ratio")
            else DEFAULT_CACHE_WRITE_RATIO
        ),
        cache_write_1h_ratio=(
            p.cache_write_1h_ratio
            if p.HasField("cache_write_1h_ratio")
            else DEFAULT_CACHE_WRITE_RATIO
        ),
        audio_ratio=p.audio_ratio if p.HasField("audio_ratio") else DEFAULT_AUDIO_RATIO,
        audio_completion_ratio=(
            p.audio_completion_ratio
            if p.HasField("audio_completion_ratio")
            else DEFAULT_AUDIO_COMPLETION_RATIO
        ),
    )


def quota_of(p: auth_pb2.Pricing, u: common_pb2.Usage) -> int:
    """The call's cost in quota units: per unit when the usage is in the unit the model is
    priced in (seconds, characters, images, search units), else per token."""
    if p.unit and u.unit == p.unit:
        return unit_quota(u.quantity, Fraction(p.unit_price), p.group_ratio)
    return quota_for(
        price_of(p),
        u.prompt_tokens,
        u.completion_tokens,
        u.cached_tokens,
        cache_write_5m_tokens=u.cache_write_5m_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        audio_tokens=u.audio_tokens,
        audio_completion_tokens=u.audio_completion_tokens,
    )
