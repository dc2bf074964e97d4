"""Which traces are recorded: a share of those that start at a unit of work, decided once
where the trace starts."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

# The standard variable of the SDK's ratio samplers: the share of traces recorded.
SAMPLE_RATIO_ENV = "OTEL_TRACES_SAMPLER_ARG"


def sample_ratio(raw: str | None) -> float:
    """``OTEL_TRACES_SAMPLER_ARG`` as a share in [0, 1]; unset or unreadable: 1 (all)."""
    try:
        value = float(raw) if raw is not None and raw.strip() else 1.0
    except ValueError:
        return 1.0
    return min(max(value, 0.0), 1.0)


class WorkRoots(Sampler):
    """Traces start at a unit of work (a request, a published or consumed batch), never at a
    bare outgoing call: background loops (health reports, sweeper and lease checks in Redis)
    would otherwise each make a one-span trace every few seconds. Of the roots, ``ratio``
    (by trace id, so the same on every service) are recorded; the decision travels with the
    trace context and every span below follows it (``ParentBased``), so a request not
    sampled costs no span work further down (see ``telemetry.recording``)."""

    def __init__(self, ratio: float = 1.0) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"UnigateWorkRoots{{{self._ratio.get_description()}}}"
