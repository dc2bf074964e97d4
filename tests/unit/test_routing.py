from __future__ import annotations

import random
from collections import Counter

from unigate_auth.routing import Ability, order_candidates


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
