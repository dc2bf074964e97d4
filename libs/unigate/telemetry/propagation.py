"""Trace context (and baggage) into and out of gRPC metadata, HTTP headers and NATS
event carriers."""

from __future__ import annotations

from collections.abc import (
    Iterable,
    Mapping,
    MutableMapping,
)

from opentelemetry import context, propagate

from unigate.telemetry.setup import tracing_enabled


def inject_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata (empty when not tracing)."""
    if not tracing_enabled():
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def inject_headers() -> dict[str, str]:
    if not tracing_enabled():
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def inject_into(carrier: MutableMapping[str, str]) -> None:
    if tracing_enabled():
        propagate.inject(carrier)


def extract(carrier: Mapping[str, str] | Iterable[tuple[str, str | bytes]]) -> context.Context:
    if isinstance(carrier, Mapping):
        return propagate.extract(carrier)
    return propagate.extract({k: v if isinstance(v, str) else v.decode() for k, v in carrier})
