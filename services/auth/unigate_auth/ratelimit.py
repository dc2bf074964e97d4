"""Rate limits: which one-minute windows a request counts against, and how to report them.

A key's own ``rpm_limit``/``tpm_limit`` are counted per key; the user's limits (or, when the
user has none, the group's defaults from the ``GroupRateLimits`` option) per user, across all
of the user's keys. Windows live in Redis, so every gateway shares one budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from unigate import errors
from unigate.quota import RATE_WINDOW_SECONDS, RateWindow
from unigate.v1 import auth_pb2


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int = 0
    tpm: int = 0


def windows_for(
    token_id: int, token_limits: Limits, user_id: int, user_limits: Limits, tokens: int
) -> tuple[RateWindow, ...]:
    out = []
    for scope, limits in ((f"t:{token_id}", token_limits), (f"u:{user_id}", user_limits)):
        if limits.rpm > 0:
            out.append(RateWindow(f"{scope}:rpm", limits.rpm, 1))
        if limits.tpm > 0:
            out.append(RateWindow(f"{scope}:tpm", limits.tpm, max(tokens, 1)))
    return tuple(out)


def _reset_ms(now_ms: int) -> int:
    window_ms = RATE_WINDOW_SECONDS * 1000
    return window_ms - now_ms % window_ms


def report(
    windows: tuple[RateWindow, ...], counts: tuple[int, ...], now_ms: int
) -> auth_pb2.RateLimits | None:
    """The tightest request and token windows, as OpenAI's x-ratelimit-* headers show them."""
    if not windows:
        return None
    result = auth_pb2.RateLimits()
    reset = _reset_ms(now_ms)
    for kind, target in (("rpm", result.requests), ("tpm", result.tokens)):
        tightest: tuple[int, int] | None = None
        for window, count in zip(windows, counts, strict=False):
            if window.scope.endswith(kind):
                remaining = max(window.limit - count, 0)
                if tightest is None or remaining < tightest[1]:
                    tightest = (window.limit, remaining)
        if tightest is not None:
            target.limit, target.remaining = tightest
            target.reset_ms = reset
    return result


def refusal(
    windows: tuple[RateWindow, ...], violated: int, count: int, now_ms: int
) -> tuple[errors.ClientFacingError, auth_pb2.RateLimits]:
    window = windows[violated]
    per_key = window.scope.startswith("t:")
    is_requests = window.scope.endswith("rpm")
    unit = "requests per min (RPM)" if is_requests else "tokens per min (TPM)"
    wait = math.ceil(_reset_ms(now_ms) / 1000)
    err = errors.ClientFacingError(
        f"Rate limit reached for this {'API key' if per_key else 'account'} on {unit}:"
        f" Limit {window.limit}, Used {count}, Requested {window.cost}."
        f" Please try again in {wait}s.",
        status=429,
        type="requests" if is_requests else "tokens",
        code="rate_limit_exceeded",
    )
    limits = (
        report(windows, tuple(count if i == violated else 0 for i in range(len(windows))), now_ms)
        or auth_pb2.RateLimits()
    )
    limits.retry_after_seconds = wait
    return err, limits
