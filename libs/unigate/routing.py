"""Ordering channel candidates: priority tiers first, weighted random inside a tier, with
traffic taken away from channels whose recent latency or error rate is far worse than their
tier's."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import TypeVar

from unigate.health import Averages

# A channel slower than this many times its tier's fastest loses traffic in proportion.
SLOW_FACTOR = 2.0
# Error rates within this of the tier's best count as equally good (noise, not a trend).
ERROR_RATE_SLACK = 0.05
# Never starve a channel entirely: it must keep getting some calls to show it recovered.
MIN_SHARE_FACTOR = 0.05
# Averages over fewer calls are no trend: a recovered channel's first probe, answered on an
# idle machine, once made a peer measured under a burst look six times slower and took
# nine tenths of the traffic from it.
MIN_CALLS = 20

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ability:
    channel_id: int
    channel_type: int
    priority: int
    weight: int
    upstream_model: str
    config_version: int


def health_factors(tier: list[Ability], averages: Mapping[int, Averages]) -> dict[int, float]:
    """Each channel's weight multiplier in its tier: 1 unless its moving averages are far
    worse than the tier's best; channels without :data:`MIN_CALLS` calls on record count as
    healthy and are not measured against."""
    trends = {
        a.channel_id: avg
        for a in tier
        if (avg := averages.get(a.channel_id)) is not None and avg.calls >= MIN_CALLS
    }
    known = list(trends.values())
    if len(known) < 2:
        return {}
    fastest = min((k.latency_ms for k in known if k.latency_ms > 0), default=0.0)
    best_errors = min(k.error_rate for k in known)
    factors: dict[int, float] = {}
    for a in tier:
        avg = trends.get(a.channel_id)
        if avg is None:
            continue
        factor = 1.0
        if fastest > 0 and avg.latency_ms > SLOW_FACTOR * fastest:
            factor *= SLOW_FACTOR * fastest / avg.latency_ms
        if avg.error_rate > best_errors + ERROR_RATE_SLACK:
            factor *= (1 - avg.error_rate) / (1 - best_errors)
        factors[a.channel_id] = max(factor, MIN_SHARE_FACTOR)
    return factors


def effective_weights(
    abilities: list[Ability], averages: Mapping[int, Averages] | None = None
) -> dict[int, float]:
    """Each channel's weight in its tier (0 counts as 1) scaled by :func:`health_factors`."""
    out: dict[int, float] = {}
    by_priority = sorted(abilities, key=lambda a: -a.priority)
    for _, tier_iter in groupby(by_priority, key=lambda a: a.priority):
        tier = list(tier_iter)
        factors = health_factors(tier, averages) if averages and len(tier) > 1 else {}
        for a in tier:
            out[a.channel_id] = max(a.weight, 1) * factors.get(a.channel_id, 1.0)
    return out


def draw_order(
    items: Iterable[T],
    priority: Callable[[T], int],
    weight: Callable[[T], float],
    rng: random.Random | None = None,
) -> list[T]:
    """Highest priority tier first; within a tier, a weighted random permutation, so the
    first pick follows the weights and the rest are fallbacks. Auth draws a request's order
    with it, and so does a gateway serving a request from a spare reservation."""
    rnd = rng or random
    ordered: list[T] = []
    for _, tier_iter in groupby(sorted(items, key=lambda a: -priority(a)), key=priority):
        # Efraimidis-Spirakis: sorting by u**(1/w) draws a weighted permutation.
        ordered.extend(
            sorted(
                tier_iter,
                key=lambda a: rnd.random() ** (1.0 / max(weight(a), 1e-9)),
                reverse=True,
            )
        )
    return ordered


def order_candidates(
    abilities: list[Ability],
    rng: random.Random | None = None,
    averages: Mapping[int, Averages] | None = None,
) -> list[Ability]:
    """Highest priority tier first; within a tier, a weighted random permutation (weight 0
    counts as 1, scaled by :func:`health_factors`)."""
    weights = effective_weights(abilities, averages)
    return draw_order(abilities, lambda a: a.priority, lambda a: weights[a.channel_id], rng)
