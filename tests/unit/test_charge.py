"""The gateway's charge for a call: the relay's usage at the prices auth captured."""

from __future__ import annotations

from unigate.charge import price_of, quota_of
from unigate.v1 import auth_pb2, common_pb2

USAGE = common_pb2.Usage(
    prompt_tokens=1000, cached_tokens=200, cache_write_5m_tokens=400, cache_write_1h_tokens=100
)


def test_cache_writes_are_charged_at_the_ratios_auth_sent() -> None:
    claude = auth_pb2.Pricing(
        model_ratio=1.0,
        completion_ratio=5.0,
        group_ratio=1.0,
        cached_ratio=0.1,
        cache_write_5m_ratio=1.25,
        cache_write_1h_ratio=2.0,
    )
    # 300 plain + 200 x 0.1 + 400 x 1.25 + 100 x 2 = 1,020.
    assert quota_of(claude, USAGE) == 1020


def test_a_pricing_without_write_ratios_bills_writes_as_plain_input() -> None:
    # An auth from before cache writes were priced: unset, not proto3's 0 (free writes).
    old = auth_pb2.Pricing(model_ratio=1.0, completion_ratio=5.0, group_ratio=1.0, cached_ratio=0.1)
    price = price_of(old)
    assert (price.cache_write_5m_ratio, price.cache_write_1h_ratio) == (1.0, 1.0)
    assert quota_of(old, USAGE) == 820
    # Set to 0 on purpose, they are 0.
    free = auth_pb2.Pricing(
        model_ratio=1.0, group_ratio=1.0, cache_write_5m_ratio=0.0, cache_write_1h_ratio=0.0
    )
    assert quota_of(free, USAGE) == 300
