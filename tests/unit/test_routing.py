from __future__ import annotations

import random
from collections import Counter

from unigate.health import Averages
from unigate.routing import (
    MIN_CALLS,
    MIN_SHARE_FACTOR,
    Ability,
    health_factors,
    order_candidates,
)


def ability(cid: int, priority: int, weight: int) -> Ability:
    return Ability(cid, 1, priority, weight, "m", 1)


def test_higher_priority_tier_always_first() -> None:
    abilities = [ability(1, 0, 100), ability(2, 10, 1), ability(3, 5, 1)]
    for seed in range(50):
        order = [a.channel_id for a in order_candidates(abilities, random.Random(seed))]
        assert order == [2, 3, 1]


def test_first_pick_follows_weights_within_tier() -> None:
    abilities = [ability(1, 0, 1), ability(2, 0, 3), ability(3, 0, 0)]
    rng = random.Random(7)
    firsts = Counter(order_candidates(abilities, rng)[0].channel_id for _ in range(20_000))
    # weights 1 : 3 : (0 counts as 1)
    assert abs(firsts[1] / 20_000 - 0.2) < 0.02
    assert abs(firsts[2] / 20_000 - 0.6) < 0.02
    assert abs(firsts[3] / 20_000 - 0.2) < 0.02


def test_every_candidate_appears_once() -> None:
    abilities = [ability(i, i % 3, i) for i in range(1, 10)]
    order = order_candidates(abilities, random.Random(1))
    assert sorted(a.channel_id for a in order) == list(range(1, 10))


def _first_shares(
    abilities: list[Ability], averages: dict[int, Averages], n: int = 20_000
) -> dict[int, float]:
    rng = random.Random(3)
    firsts = Counter(order_candidates(abilities, rng, averages)[0].channel_id for _ in range(n))
    return {cid: count / n for cid, count in firsts.items()}


def test_slow_channel_gets_proportionally_less_traffic() -> None:
    tier = [ability(1, 0, 1), ability(2, 0, 1)]
    # Within twice the tier's best: noise, weights unchanged.
    near = _first_shares(tier, {1: Averages(100, 0, 100), 2: Averages(190, 0, 100)})
    assert abs(near[1] - 0.5) < 0.02
    # Eight times slower: a quarter of its weight (2x allowance / 8x), so 0.2 of the picks.
    assert health_factors(tier, {1: Averages(100, 0, 100), 2: Averages(800, 0, 100)}) == {
        1: 1.0,
        2: 0.25,
    }
    far = _first_shares(tier, {1: Averages(100, 0, 100), 2: Averages(800, 0, 100)})
    assert abs(far[2] - 0.2) < 0.02


def test_failing_channel_gets_less_traffic_but_never_none() -> None:
    tier = [ability(1, 0, 1), ability(2, 0, 1), ability(3, 0, 1)]
    factors = health_factors(
        tier, {1: Averages(100, 0.0, 100), 2: Averages(100, 0.5, 100), 3: Averages(100, 1.0, 100)}
    )
    assert factors == {1: 1.0, 2: 0.5, 3: MIN_SHARE_FACTOR}
    # A channel with no averages yet, or a tier with one known channel, is left alone.
    assert health_factors(tier, {2: Averages(900, 0.9, 100)}) == {}
    # Other tiers are judged on their own: the slow channel is alone in its tier.
    mixed = [ability(1, 5, 1), ability(2, 5, 1), ability(3, 0, 1)]
    order = order_candidates(mixed, random.Random(1), {3: Averages(10_000, 1.0, 100)})
    assert order[-1].channel_id == 3


def test_averages_over_a_few_calls_are_not_measured_against() -> None:
    tier = [ability(1, 0, 1), ability(2, 0, 1)]
    # A recovered channel's one probe (fast, idle machine) against a peer measured under load.
    one_probe = {1: Averages(5, 0.0, 1), 2: Averages(300, 0.0, 500)}
    assert health_factors(tier, one_probe) == {}
    shares = _first_shares(tier, one_probe)
    assert abs(shares[1] - 0.5) < 0.02
    # Once it has a trend of its own, the comparison applies.
    trend = {1: Averages(5, 0.0, MIN_CALLS), 2: Averages(300, 0.0, 500)}
    assert health_factors(tier, trend)[2] < 0.1
