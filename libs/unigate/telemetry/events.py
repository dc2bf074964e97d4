"""Usage events over NATS: publish and consume spans linked across the stream, and the
ledger write."""

from __future__ import annotations

import contextlib
from collections.abc import (
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

from unigate.telemetry.setup import (
    NO_SPAN,
    recording,
    tracer,
)


def stamp_event(carrier: MutableMapping[str, str]) -> None:
    """Put the current (request's) trace context into a usage event, if it was sampled (an
    event without one gets no span in billing)."""
    if recording():
        propagate.inject(carrier)


def _event_link(carrier: Mapping[str, str]) -> Link | None:
    ctx = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return Link(ctx) if ctx.is_valid else None


def start_publish(
    subject: str, carriers: Iterable[Mapping[str, str]], count: int, headers: dict[str, str]
) -> Span:
    """The PRODUCER span of one batch message, linked to every request in it (one message
    carries many requests, so it can be the child of none of them); its own context goes
    into the message headers."""
    links = [link for link in map(_event_link, carriers) if link is not None]
    span = tracer().start_span(
        f"send {subject}",
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "send",
            "messaging.destination.name": subject,
            "messaging.batch.message_count": count,
        },
    )
    with trace.use_span(span, end_on_exit=False):
        propagate.inject(headers)
    return span


class ConsumeTrace:
    """Billing's spans for one fetched batch.

    A CONSUMER span for the batch (linked to the publishers' spans), the ledger write as its
    child, and one span per usage event as a child of that event's request, so each request's
    trace shows its billing.
    """

    def __init__(
        self,
        subject: str,
        headers: Iterable[Mapping[str, str] | None],
        events: Iterable[tuple[str, Mapping[str, str]]],
    ) -> None:
        headers = list(headers)
        links = [link for h in headers if h for link in [_event_link(h)] if link is not None]
        events = list(events)
        self.batch = tracer().start_span(
            f"process {subject}",
            context=context.Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": subject,
                "messaging.batch.message_count": len(headers),
                "unigate.events": len(events),
            },
        )
        batch_link = [Link(self.batch.get_span_context())]
        self.events: dict[str, Span] = {
            request_id: tracer().start_span(
                "apply usage event",
                context=propagate.extract(carrier),
                kind=SpanKind.CONSUMER,
                links=batch_link,
                attributes={"unigate.request_id": request_id, "messaging.system": "nats"},
            )
            for request_id, carrier in events
            # No context: its request was not sampled (a root here would start a trace).
            if carrier
        }

    @contextlib.contextmanager
    def ledger_write(self, rows: int) -> Iterator[Span]:
        with tracer().start_as_current_span(
            "INSERT unigate ledger",
            context=trace.set_span_in_context(self.batch),
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": "apply usage batch",
                "db.operation.batch.size": rows,
            },
        ) as span:
            yield span

    def finish(self, applied: set[str], outcome: str | None = None) -> None:
        for request_id, span in self.events.items():
            span.set_attribute(
                "unigate.outcome", outcome or ("applied" if request_id in applied else "duplicate")
            )
            span.end()
        self.batch.set_attribute("unigate.events.applied", len(applied))
        self.batch.end()


def ledger_write(traced: ConsumeTrace | None, rows: int) -> AbstractContextManager[Any]:
    return NO_SPAN if traced is None else traced.ledger_write(rows)
