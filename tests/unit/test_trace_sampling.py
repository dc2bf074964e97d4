"""Trace sampling: decided once where a trace starts, followed by every span below it, and a
request not sampled costs no span work further down (no span, no context sent on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import SpanKind

from unigate.telemetry import rpc, setup
from unigate.telemetry.sampling import WorkRoots, sample_ratio


@pytest.mark.parametrize(
    ("raw", "ratio"),
    [(None, 1.0), ("", 1.0), ("0.05", 0.05), ("0", 0.0), ("1", 1.0), ("7", 1.0), ("-1", 0.0)],
)
def test_sample_ratio_reads_the_standard_variable(raw: str | None, ratio: float) -> None:
    assert sample_ratio(raw) == ratio


def test_unreadable_ratio_records_everything() -> None:
    assert sample_ratio("lots") == 1.0


def _provider(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(root=WorkRoots(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_ratio_applies_to_roots_and_children_follow() -> None:
    provider, exporter = _provider(0.25)
    tracer = provider.get_tracer("t")
    sampled = 0
    for _ in range(2000):
        root = tracer.start_span("POST /v1/chat/completions", kind=SpanKind.SERVER)
        sampled += root.is_recording()
        with trace.use_span(root, end_on_exit=True):
            child = tracer.start_span("attempt chat gpt-4o-mini")
            # Every span of a trace shares its root's decision.
            assert child.is_recording() == root.is_recording()
            child.end()
    assert 350 < sampled < 650  # 25 % of 2,000, by trace id
    assert len(exporter.get_finished_spans()) == 2 * sampled


def test_a_bare_client_call_never_starts_a_trace() -> None:
    provider, _ = _provider(1.0)
    span = provider.get_tracer("t").start_span("EVALSHA", kind=SpanKind.CLIENT)
    assert not span.is_recording()


@pytest.fixture
def tracing_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[TracerProvider]:
    """The module's tracer as `setup_tracing` would make it (without an exporter)."""
    provider, _ = _provider(1.0)
    monkeypatch.setattr(setup, "_configured", True)
    monkeypatch.setattr(setup, "tracer", lambda: provider.get_tracer("unigate"))
    monkeypatch.setattr(rpc, "tracer", lambda: provider.get_tracer("unigate"))
    yield provider


def test_an_unsampled_request_sends_no_context_and_gets_no_server_span(
    tracing_on: TracerProvider,
) -> None:
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    carrier: dict[str, str] = {}
    with trace.use_span(unsampled):
        assert not setup.recording()
        assert rpc.start_rpc_client("/unigate.v1.AuthService/Authorize", carrier) is None
    assert carrier == {}
    # The server side: an empty carrier is a call of an unsampled request, never a new root,
    # and the libraries' own instrumentation (Redis) makes no span either.
    token = context.attach(context.Context())
    try:
        with rpc.rpc_server_span("/unigate.v1.AuthService/Authorize", carrier) as span:
            assert span is None
            assert not trace.get_current_span().is_recording()
            assert not is_instrumentation_enabled()
        assert is_instrumentation_enabled()
    finally:
        context.detach(token)


def test_a_sampled_request_is_joined_on_the_server(tracing_on: TracerProvider) -> None:
    root = tracing_on.get_tracer("t").start_span("POST /v1/chat/completions", kind=SpanKind.SERVER)
    carrier: dict[str, str] = {}
    with trace.use_span(root, end_on_exit=True):
        assert setup.recording()
        client = rpc.start_rpc_client("/unigate.v1.AuthService/Authorize", carrier)
        assert client is not None and "traceparent" in carrier
        rpc.end_rpc_client(client, None)
    token = context.attach(context.Context())
    try:
        with rpc.rpc_server_span("/unigate.v1.AuthService/Authorize", carrier) as span:
            assert span.is_recording()
            assert span.get_span_context().trace_id == root.get_span_context().trace_id
    finally:
        context.detach(token)
