"""Prometheus metrics of the gateway."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("unigate_gateway_requests_total", "Requests answered", ["endpoint", "status"])
LATENCY = Histogram(
    "unigate_gateway_request_seconds",
    "Time to the last byte of the answer",
    ["endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter("unigate_gateway_retries_total", "Attempts on a further channel", ["reason"])
