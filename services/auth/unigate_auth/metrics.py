"""Prometheus metrics of auth: Authorize decisions by outcome. Channel circuit states come
from ``unigate.metrics.circuit_state_hook`` at scrape time."""

from __future__ import annotations

from prometheus_client import Counter

from unigate.metrics import Children
from unigate.v1 import auth_pb2

DECISIONS = Counter(
    "unigate_auth_decisions_total",
    "Authorize decisions: `allowed`, `spares_refill` (a gateway's refill of a hot key's spares,"
    " for no request), or the error code of the refusal",
    ["outcome"],
)
_decisions = Children(DECISIONS)


def decided(decision: auth_pb2.AuthorizeResponse, refill: bool = False) -> None:
    if decision.allowed:
        _decisions("spares_refill" if refill else "allowed").inc()
    else:
        # Error codes are auth's own, a small fixed set.
        _decisions(decision.error.code or decision.error.type or "denied").inc()


SPARES = Counter(
    "unigate_auth_spare_reservations_total",
    "Spare reservations issued to gateways for hot keys",
)


def spares_issued(n: int) -> None:
    SPARES.inc(n)
