"""Prometheus metrics of the gateway.

A relayed request is counted once, when it is over: by the proxy when it was authorized (with
the model the client asked for and the channel that served it, or the last one tried; for a
stream when its last byte went out), else by the app when it was refused first (model and
channel empty). The model label only ever holds names auth accepted, so clients cannot grow
the label set by sending made-up model names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from unigate.metrics import LATENCY_BUCKETS, TTFT_BUCKETS, Children

REQUESTS = Counter(
    "unigate_gateway_requests_total",
    "Relayed requests answered, by route (endpoint), model, channel and HTTP status",
    ["route", "model", "channel", "status"],
)
REQUEST_SECONDS = Histogram(
    "unigate_gateway_request_duration_seconds",
    "Time from the request to the last byte of its answer",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
TTFT_SECONDS = Histogram(
    "unigate_gateway_time_to_first_token_seconds",
    "Time from a streamed request to its first event reaching the client",
    ["route"],
    buckets=TTFT_BUCKETS,
)
SPARES_SERVED = Counter(
    "unigate_gateway_spare_served_total",
    "Requests of a hot key served from a spare reservation, without a call to auth",
)
RETRIES = Counter("unigate_gateway_retries_total", "Attempts on a further channel", ["reason"])
USAGE_PUBLISHED = Counter(
    "unigate_gateway_usage_events_published_total", "Usage events JetStream acknowledged"
)
USAGE_PUBLISH_FAILURES = Counter(
    "unigate_gateway_usage_publish_failures_total",
    "Failed attempts to publish a batch of usage events (each is retried)",
)
USAGE_DROPPED = Counter(
    "unigate_gateway_usage_events_dropped_total",
    "Usage events not buffered because the buffer was full (logged whole for replay)",
)
USAGE_BUFFER = Gauge(
    "unigate_gateway_usage_buffer_events",
    "Usage events not yet acknowledged by JetStream (buffered, or in a batch being published)",
)

_requests = Children(REQUESTS)
_request_seconds = Children(REQUEST_SECONDS)
_ttft_seconds = Children(TTFT_SECONDS)
_retries = Children(RETRIES)


def request_done(route: str, model: str, channel: int, status: int, seconds: float) -> None:
    _requests(route, model, str(channel) if channel else "", str(status)).inc()
    _request_seconds(route).observe(seconds)


def first_token(route: str, seconds: float) -> None:
    _ttft_seconds(route).observe(seconds)


def retried(reason: str) -> None:
    _retries(reason).inc()
