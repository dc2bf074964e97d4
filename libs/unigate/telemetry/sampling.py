"""Which traces are recorded: those that start at a unit of work."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind


class WorkRoots(Sampler):
    """Traces start at a unit of work (a request, a published or consumed batch), never at a
    bare outgoing call: background loops (health reports, sweeper and lease checks in Redis)
    would otherwise each make a one-span trace every few seconds."""

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
        return ALWAYS_ON.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "UnigateWorkRoots"
