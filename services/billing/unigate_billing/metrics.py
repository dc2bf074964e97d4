"""Prometheus metrics of billing: what the ledger applied (tokens and quota, by model, only for
rows actually inserted, so a redelivered event is not counted twice), batch sizes, and the
durable consumer's backlog read from JetStream at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge, Histogram

from unigate.metrics import Children
from unigate.namespace import Namespace
from unigate.ops import ScrapeHook
from unigate.v1 import events_pb2

EVENTS = Counter(
    "unigate_billing_events_total",
    "Usage events handled: applied (a new ledger row), duplicate (already in the ledger),"
    " dead_letter (never applicable)",
    ["result"],
)
TOKENS = Counter(
    "unigate_billing_tokens_total",
    "Tokens of the ledger rows applied, by model and kind (prompt, completion)",
    ["model", "kind"],
)
QUOTA = Counter(
    "unigate_billing_quota_total", "Quota charged by the ledger rows applied, by model", ["model"]
)
BATCH_EVENTS = Histogram(
    "unigate_billing_batch_events",
    "Usage events per fetched batch (one ledger statement each)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)
BATCH_MESSAGES = Histogram(
    "unigate_billing_batch_messages",
    "JetStream messages per fetched batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
LEDGER_WRITE_SECONDS = Histogram(
    "unigate_billing_ledger_write_seconds",
    "Duration of one batch's ledger statement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_PENDING = Gauge(
    "unigate_billing_consumer_pending_messages",
    "Messages in the usage stream not yet delivered to the billing consumer (its lag)",
)
CONSUMER_ACK_PENDING = Gauge(
    "unigate_billing_consumer_ack_pending_messages",
    "Messages delivered to a billing process and not yet acknowledged",
)
CONSUMER_REDELIVERED = Gauge(
    "unigate_billing_consumer_redelivered_messages",
    "Messages delivered more than once and still unacknowledged",
)
CONSUMER_STALLS = Counter(
    "unigate_billing_consumer_stalls_total",
    "Times the usage consumer was found stuck (messages pending, none delivered anywhere) and"
    " the remedy applied: resubscribe (this process's pull subscription), step_down (the"
    " consumer's leader)",
    ["remedy"],
)

_events = Children(EVENTS)
_tokens = Children(TOKENS)
_quota = Children(QUOTA)


def batch_applied(
    events: Iterable[events_pb2.UsageEvent], applied: set[str], dead: int, messages: int
) -> None:
    total = 0
    for event in events:
        total += 1
        if event.request_id not in applied:
            _events("duplicate").inc()
            continue
        _events("applied").inc()
        model = event.model
        _tokens(model, "prompt").inc(event.usage.prompt_tokens)
        _tokens(model, "completion").inc(event.usage.completion_tokens)
        _quota(model).inc(event.quota)
    if dead:
        _events("dead_letter").inc(dead)
    BATCH_EVENTS.observe(total + dead)
    BATCH_MESSAGES.observe(messages)


def consumer_lag_hook(js: JetStreamContext, ns: Namespace) -> ScrapeHook:
    """Sets the backlog gauges from one JetStream consumer-info request."""

    async def update() -> None:
        info = await js.consumer_info(ns.usage_stream, ns.billing_consumer, timeout=2.0)
        CONSUMER_PENDING.set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.set(info.num_ack_pending or 0)
        CONSUMER_REDELIVERED.set(info.num_redelivered or 0)

    return update
