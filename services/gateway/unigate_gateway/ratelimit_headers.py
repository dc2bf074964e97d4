"""OpenAI's ``x-ratelimit-*`` response headers from auth's rate-limit report."""

from __future__ import annotations

from unigate.v1 import auth_pb2


def _duration(ms: int) -> str:
    """OpenAI's format: "20ms", "17s", "6m0s"."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


def rate_limit_headers(limits: auth_pb2.RateLimits) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, state in (("requests", limits.requests), ("tokens", limits.tokens)):
        if state.limit:
            headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = _duration(state.reset_ms)
    if limits.retry_after_seconds:
        headers["retry-after"] = str(limits.retry_after_seconds)
    return headers
