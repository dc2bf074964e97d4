"""Prometheus helpers shared by the services, and the figures more than one service reads
from Redis at scrape time (channel circuit states, open reservations).

Per-request updates go through :class:`Children`, which keeps each label combination's child
in a plain dict: ``metric.labels(...)`` takes a lock and builds a key on every call, a dict
lookup does not. Figures that cost a round trip to Redis or NATS are never updated on the
request path; a scrape hook (``unigate.ops.ScrapeHook``) sets them when Prometheus asks.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

from prometheus_client import Gauge
from prometheus_client.metrics import MetricWrapperBase
from redis.asyncio import Redis

from unigate.health import ChannelHealth
from unigate.namespace import Namespace
from unigate.ops import ScrapeHook
from unigate.quota import QuotaStore

M = TypeVar("M", bound=MetricWrapperBase)

#: Buckets for whole requests and upstream calls: LLM answers take from milliseconds
#: (embeddings, cached) to minutes (long completions).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Time to the first token of a stream.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class Children(Generic[M]):
    """The children of one labelled metric, bound once per label combination."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


CIRCUIT_STATES = ("healthy", "cooling", "half-open")

CHANNEL_CIRCUIT = Gauge(
    "unigate_channel_circuit_state",
    "1 for the state each channel with a health record is in (healthy, cooling, half-open)",
    ["channel", "state"],
)
CHANNEL_LATENCY_EWMA = Gauge(
    "unigate_channel_latency_ewma_seconds",
    "Moving average of a channel's latency (to the answer, or a stream's first token)",
    ["channel"],
)
CHANNEL_ERROR_EWMA = Gauge(
    "unigate_channel_error_rate_ewma", "Moving average of a channel's error rate", ["channel"]
)
RESERVATIONS_OPEN = Gauge(
    "unigate_reservations_outstanding", "Quota reservations booked and not yet settled"
)
RESERVATION_OLDEST_AGE = Gauge(
    "unigate_reservation_oldest_age_seconds",
    "Age of the oldest unsettled reservation (0 when none); the sweeper settles it at"
    " RESERVATION_TIMEOUT",
)


def circuit_state_hook(health: ChannelHealth) -> ScrapeHook:
    """Sets the circuit-state and moving-average gauges from one health snapshot."""

    async def update() -> None:
        snap = await health.snapshot()
        now_ms = int(time.time() * 1000)
        channels = set(snap.fails) | set(snap.cooling_until) | set(snap.averages)
        CHANNEL_CIRCUIT.clear()
        CHANNEL_LATENCY_EWMA.clear()
        CHANNEL_ERROR_EWMA.clear()
        for channel in sorted(channels):
            state = snap.state(channel, now_ms)
            for name in CIRCUIT_STATES:
                CHANNEL_CIRCUIT.labels(str(channel), name).set(1 if name == state else 0)
            averages = snap.averages.get(channel)
            if averages is not None:
                CHANNEL_LATENCY_EWMA.labels(str(channel)).set(averages.latency_ms / 1000)
                CHANNEL_ERROR_EWMA.labels(str(channel)).set(averages.error_rate)

    return update


def reservations_hook(redis: Redis, ns: Namespace) -> ScrapeHook:
    """Sets the open-reservation gauges from the groups' reservation indexes (a ZCARD and a
    ZRANGE each, one pipeline)."""
    quota = QuotaStore(redis, ns)

    async def update() -> None:
        count, oldest = await quota.open_reservations()
        RESERVATIONS_OPEN.set(count)
        age = time.time() - oldest / 1000 if oldest is not None else 0.0
        RESERVATION_OLDEST_AGE.set(max(age, 0.0))

    return update
