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


def test_paid_call_never_costs_zero_and_free_model_costs_nothing() -> None:
    assert quota_for(Price(0.0001, 1.0), 1, 0) == 1
    assert quota_for(Price(0.0, 1.0), 10_000, 10_000) == 0
    assert quota_for(Price(1.0, 1.0), 0, 0) == 0


def test_operator_overrides_win_over_defaults() -> None:
    price = price_for("gpt-4o", model_ratios={"gpt-4o": 7.0}, completion_ratios={"gpt-4o": 2.0})
    assert (price.model_ratio, price.completion_ratio) == (7.0, 2.0)
    assert price_for("some-unknown-model").model_ratio == 1.0
