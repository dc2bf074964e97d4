"""Ordering channel candidates: priority tiers first, weighted random inside a tier."""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True, slots=True)
class Ability:
    channel_id: int
    channel_type: int
    priority: int
    weight: int
    upstream_model: str
    config_version: int


def order_candidates(abilities: list[Ability], rng: random.Random | None = None) -> list[Ability]:
    """Highest priority tier first; within a tier, a weighted random permutation
    (weight 0 counts as 1), so the first pick follows the weights and the rest are fallbacks."""
    rnd = rng or random
    ordered: list[Ability] = []
    by_priority = sorted(abilities, key=lambda a: -a.priority)
    for _, tier_iter in groupby(by_priority, key=lambda a: a.priority):
        tier = list(tier_iter)
        # Efraimidis-Spirakis: sorting by u**(1/w) draws a weighted permutation.
        ordered.extend(
            sorted(tier, key=lambda a: rnd.random() ** (1.0 / max(a.weight, 1)), reverse=True)
        )
    return ordered
