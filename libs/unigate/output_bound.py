"""The output bound of a request: how many completion tokens its payer can afford.

A generating request is sent upstream only with an output limit (``max_tokens`` or the
provider's own field) whose worst-case cost is reserved, so a balance can never be spent
below zero: the prompt is priced at its most expensive reading (every token a prompt-cache
write where the model charges more for one), the completion at its limit. The arithmetic is
exact (fractions of the float ratios), and rounds as :func:`unigate.pricing.quota_for` does
(up, never 0 for a paid model), so a request whose usage stays within its prompt estimate and
its bound never settles above its reservation.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache

from unigate import gemini_endpoints as gemini
from unigate import model_limits
from unigate.pricing import Price

# Endpoints whose answers are generated token by token and can be bounded.
GENERATING = frozenset(
    {"chat.completions", "completions", "responses", "messages", gemini.GENERATE}
)


def prompt_ratio(price: Price, *, long_cache_writes: bool = False) -> float:
    """The most a prompt token can cost, as a multiple of the input price: a 5-minute cache
    write (Claude's 1.25), a 1-hour one (2) when the request asks for that lifetime, a cache
    read (normally cheaper), else plain input."""
    ratios = [1.0, price.cached_ratio, price.cache_write_5m_ratio]
    if long_cache_writes:
        ratios.append(price.cache_write_1h_ratio)
    return max(ratios)


# A float's exact fraction is a pure function of a handful of configured ratios: each price's
# fractions are remembered as integers, and the costs below are computed in integers (exact,
# as fractions are, without a Fraction's gcd normalisation after every operation). Measured
# in-process: plan + bound of a chat request 38 -> 24 us with the fractions remembered; then
# a chat request's two worst costs and its affordable output 19.6 -> 2.5 us in integers.
@lru_cache(maxsize=4096)
def _exact(value: float) -> Fraction:
    return Fraction(value)


@lru_cache(maxsize=4096)
def _cost_terms(
    ratio: float, completion_ratio: float, model_ratio: float, group_ratio: float
) -> tuple[int, int, int, bool]:
    """(a, b, d, free output): a call of p prompt and c completion tokens costs exactly
    (p·a + c·b) / d quota units, d > 0; whether output costs nothing (or less)."""
    r, c = _exact(ratio), _exact(completion_ratio)
    s = _exact(model_ratio) * _exact(group_ratio)
    return (
        r.numerator * c.denominator * s.numerator,
        c.numerator * r.denominator * s.numerator,
        r.denominator * c.denominator * s.denominator,
        s <= 0 or c <= 0,
    )


def worst_cost(price: Price, prompt_tokens: int, completion_tokens: int, ratio: float) -> int:
    """Quota units a call may cost at most: ``prompt_tokens`` at ``ratio`` times the input
    price and ``completion_tokens`` of output, rounded up; never 0 for a paid model."""
    a, b, d, _ = _cost_terms(ratio, price.completion_ratio, price.model_ratio, price.group_ratio)
    quota = -(-(prompt_tokens * a + completion_tokens * b) // d)  # ceil, exactly
    if quota <= 0 and price.model_ratio > 0 and (prompt_tokens or completion_tokens):
        return 1
    return max(quota, 0)


def affordable_output(price: Price, prompt_tokens: int, budget: int, ratio: float, cap: int) -> int:
    """The most completion tokens (at most ``cap``) for which :func:`worst_cost` stays within
    ``budget``; -1 when not even the prompt fits."""
    if worst_cost(price, prompt_tokens, 0, ratio) > budget:
        return -1
    a, b, d, free = _cost_terms(ratio, price.completion_ratio, price.model_ratio, price.group_ratio)
    if free:
        return cap  # output costs nothing: only the cap bounds it
    # ceil((p·a + k·b) / d) <= budget  <=>  p·a + k·b <= budget·d, budget being an integer.
    return max(min((budget * d - prompt_tokens * a) // b, cap), 0)


# The output limit of a request to a model whose limit is not known, when the client names
# none: what the oldest models still served accept (Claude 3, GPT-3.5, most OpenAI-like ones).
UNKNOWN_MODEL_OUTPUT = 4096


def known_output_limit(models: Iterable[str]) -> int | None:
    """The smallest published output limit of ``models`` (what each of them accepts), or
    None when none is known."""
    limits = [n for n in map(model_limits.output_limit, models) if n is not None]
    return min(limits, default=None)


def output_cap(models: Iterable[str], client_max: int, ceiling: int, prompt_tokens: int) -> int:
    """The most output a request may ask for before money is considered: the client's own
    limit, else the smallest published output limit of the models that may serve it (what
    every one of their providers accepts; :data:`UNKNOWN_MODEL_OUTPUT` when none is known),
    never above the operator's per-request ceiling, nor beyond a context window."""
    names = set(models)
    if client_max:
        return max(min(client_max, ceiling), 1)
    cap = min(known_output_limit(names) or UNKNOWN_MODEL_OUTPUT, ceiling)
    windows = [w for w in map(model_limits.context_window, names) if w is not None]
    if windows:
        cap = min(cap, min(windows) - prompt_tokens)
    return max(cap, 1)


def limit_to_send(bound: int, client_max: int, known_limit: int | None) -> int:
    """The output limit a request goes upstream with, ``bound`` being what its reservation
    covers; 0 = none. The client's own limit is always sent (lowered to ``bound`` if need
    be), and so is any bound for a model whose limit is unknown; with no client limit, a
    bound that reaches the model's published limit is not sent: the model stops there by
    itself and the reservation covers that, while a number of our own could exceed what a
    particular deployment accepts (an Azure deployment serving another model than its name)."""
    if client_max or known_limit is None or bound < known_limit:
        return bound
    return 0
