"""Realtime billing pieces: a ``response.done`` usage mapped to unigate's terms, and the
reservation of one response (priced at the dearer of text and audio) with its bound."""

from __future__ import annotations

from unigate.charge import quota_of
from unigate.pricing import price_for
from unigate.reservation import plan
from unigate.v1 import auth_pb2
from unigate_relay.realtime import usage_of


def test_usage_of_splits_cached_audio_from_billed_audio() -> None:
    u = usage_of(
        {
            "usage": {
                "total_tokens": 700,
                "input_tokens": 500,
                "output_tokens": 200,
                "input_token_details": {
                    "text_tokens": 200,
                    "audio_tokens": 300,
                    "cached_tokens": 150,
                    "cached_tokens_details": {"text_tokens": 100, "audio_tokens": 50},
                },
                "output_token_details": {"text_tokens": 40, "audio_tokens": 160},
            }
        }
    )
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (500, 200, 700)
    assert u.cached_tokens == 150
    assert u.audio_tokens == 250  # uncached audio in
    assert u.audio_completion_tokens == 160


def test_usage_of_priced_at_list_prices() -> None:
    """gpt-realtime: 100 uncached text in at 4, 250 audio in at 32, 150 cached at 0.40,
    40 text out at 16, 160 audio out at 64 (USD per 1M tokens)."""
    u = usage_of(
        {
            "usage": {
                "input_tokens": 500,
                "output_tokens": 200,
                "input_token_details": {
                    "audio_tokens": 300,
                    "cached_tokens": 150,
                    "cached_tokens_details": {"audio_tokens": 50},
                },
                "output_token_details": {"audio_tokens": 160},
            }
        }
    )
    p = price_for("gpt-realtime")
    pricing = auth_pb2.Pricing(
        model_ratio=p.model_ratio,
        completion_ratio=p.completion_ratio,
        group_ratio=1,
        cached_ratio=p.cached_ratio,
        audio_ratio=p.audio_ratio,
        audio_completion_ratio=p.audio_completion_ratio,
    )
    usd = (100 * 4 + 250 * 32 + 150 * 0.40 + 40 * 16 + 160 * 64) / 1_000_000
    assert quota_of(pricing, u) == round(usd * 500_000)


def test_realtime_reservation_covers_audio_and_bounds_output() -> None:
    price = price_for("gpt-realtime")  # ratio 2; audio in 8x, audio out 16x text in
    req = auth_pb2.AuthorizeRequest(
        endpoint="realtime", model="gpt-realtime", estimated_prompt_tokens=10, max_tokens=4096
    )
    want = plan(price, req, ceiling=65_536, default_completion=4096)
    # Worst case: every prompt token audio (8 x 2), every output token audio (16 x 2).
    assert want.amount == 10 * 16 + 4096 * 32
    assert want.least == 10 * 16 + 32
    assert want.bound(price, want.amount) == 4096
    assert want.bound(price, 10 * 16 + 32 * 9 + 31) == 9
