"""Prometheus metrics of the relay: upstream calls by provider family and channel.

Recorded once per call when its outcome is known (a stream's at its ``StreamEnd``), from the
figures the adapter already measured (``upstream_ms``, ``first_token_ms``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from unigate.metrics import LATENCY_BUCKETS, TTFT_BUCKETS, Children
from unigate.v1 import relay_pb2

UPSTREAM_CALLS = Counter(
    "unigate_relay_upstream_requests_total",
    "Calls to providers by family, channel and outcome (ok, error, cancelled)",
    ["family", "channel", "outcome"],
)
UPSTREAM_ERRORS = Counter(
    "unigate_relay_upstream_errors_total",
    "Failed calls to providers by family, channel and error code",
    ["family", "channel", "code"],
)
UPSTREAM_SECONDS = Histogram(
    "unigate_relay_upstream_duration_seconds",
    "Duration of a provider call (to the end of its answer or stream)",
    ["family", "channel"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_TTFT_SECONDS = Histogram(
    "unigate_relay_upstream_time_to_first_token_seconds",
    "Time from a streamed provider call to its first token",
    ["family", "channel"],
    buckets=TTFT_BUCKETS,
)
IN_FLIGHT = Gauge("unigate_relay_upstream_in_flight", "Provider calls in progress")

_calls = Children(UPSTREAM_CALLS)
_errors = Children(UPSTREAM_ERRORS)
_seconds = Children(UPSTREAM_SECONDS)
_ttft = Children(UPSTREAM_TTFT_SECONDS)


def upstream_done(
    family: str,
    channel_id: int,
    error: relay_pb2.RelayError | None,
    seconds: float,
    first_token_seconds: float | None = None,
) -> None:
    """One provider call ended; times measured by the relay itself (the adapters' whole
    milliseconds read 0 for a fast provider, which would go unobserved)."""
    channel = str(channel_id)
    if error is None:
        _calls(family, channel, "ok").inc()
    else:
        _calls(family, channel, "error").inc()
        _errors(family, channel, error.error.code or error.error.type or "error").inc()
    _seconds(family, channel).observe(seconds)
    if first_token_seconds is not None:
        _ttft(family, channel).observe(first_token_seconds)


def upstream_cancelled(family: str, channel_id: int) -> None:
    """The gateway gave up on a stream (its client left) before the provider finished."""
    _calls(family, str(channel_id), "cancelled").inc()
