from __future__ import annotations

from unigate.pricing import QUOTA_PER_USD, Price, price_for, quota_for


def test_ratio_one_is_one_unit_per_prompt_token() -> None:
    assert quota_for(Price(1.0, 1.0), 1000, 0) == 1000


def test_completion_and_group_ratio_multiply() -> None:
    # gpt-4o-mini: 0.15 USD / 1M in, 0.60 USD / 1M out.
    price = price_for("gpt-4o-mini", group_ratio=0.5)
    cost = quota_for(price, 1_000_000, 1_000_000)
    assert cost == round((0.15 + 0.60) * QUOTA_PER_USD * 0.5)


def test_cached_tokens_are_cheaper_and_bounded_by_prompt() -> None:
    price = Price(1.0, 1.0, cached_ratio=0.5)
    assert quota_for(price, 1000, 0, cached_tokens=400) == 800
    assert quota_for(price, 100, 0, cached_tokens=10_000) == 50


def test_claude_cache_reads_and_writes_are_billed_at_anthropics_prices() -> None:
    # Claude Sonnet 4: 3 USD / 1M input, 15 output; cache reads 0.30, 5-minute writes 3.75,
    # 1-hour writes 6. A 10,000-token prompt: 2,000 plain, 3,000 read, 4,000 + 1,000 written.
    # 0.006 + 0.0009 + 0.015 + 0.006 + 500 * 15 / 1M (0.0075) = 0.0354 USD.
    price = price_for("claude-sonnet-4-20250514")
    assert (price.cached_ratio, price.cache_write_5m_ratio, price.cache_write_1h_ratio) == (
        0.1,
        1.25,
        2.0,
    )
    cost = quota_for(
        price, 10_000, 500, 3_000, cache_write_5m_tokens=4_000, cache_write_1h_tokens=1_000
    )
    assert cost == 17_700 == round(0.0354 * QUOTA_PER_USD)
    # The same usage without its writes told apart: they cost what plain input does.
    assert quota_for(price, 10_000, 500, 3_000) == 14_700
    # The group ratio multiplies the writes too; a fraction of a unit rounds up.
    assert quota_for(price_for("claude-sonnet-4-20250514", 0.5), 1, 0, cache_write_1h_tokens=1) == 2
    assert quota_for(Price(1.0, 1.0, cache_write_5m_ratio=1.25), 1, 0, cache_write_5m_tokens=1) == 2


def test_cache_writes_cost_plain_input_where_the_provider_charges_nothing_more() -> None:
    price = price_for("gpt-4o")
    assert (price.cache_write_5m_ratio, price.cache_write_1h_ratio) == (1.0, 1.0)
    assert price_for("some-unknown-model").cache_write_1h_ratio == 1.0
    writes = {"cache_write_5m_tokens": 400, "cache_write_1h_tokens": 100}
    assert quota_for(Price(1.0, 1.0), 1000, 0, **writes) == 1000


def test_cache_writes_are_bounded_by_what_is_left_of_the_prompt() -> None:
    price = Price(1.0, 1.0, cached_ratio=0.5, cache_write_5m_ratio=1.25, cache_write_1h_ratio=2.0)
    # 60 read (30), 30 written for an hour (60), only 10 left for 5-minute writes (12.5).
    assert quota_for(price, 100, 0, 60, cache_write_5m_tokens=30, cache_write_1h_tokens=30) == 103
    assert quota_for(price, 100, 0, cache_write_5m_tokens=-5, cache_write_1h_tokens=500) == 200


def test_paid_call_never_costs_zero_and_free_model_costs_nothing() -> None:
    assert quota_for(Price(0.0001, 1.0), 1, 0) == 1
    assert quota_for(Price(0.0, 1.0), 10_000, 10_000) == 0
    assert quota_for(Price(1.0, 1.0), 0, 0) == 0


def test_operator_overrides_win_over_defaults() -> None:
    price = price_for("gpt-4o", model_ratios={"gpt-4o": 7.0}, completion_ratios={"gpt-4o": 2.0})
    assert (price.model_ratio, price.completion_ratio) == (7.0, 2.0)
    assert price_for("some-unknown-model").model_ratio == 1.0
