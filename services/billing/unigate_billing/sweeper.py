"""Settles reservations whose request will never report back, through the same ledger path as
real usage.

Two ways a reservation is orphaned:

* its gateway died (SIGKILL, OOM, a lost machine) before publishing the request's usage
  event. Gateways keep a heartbeat in Redis (``unigate.gateways``) and each reservation names
  its gateway, so a reservation whose gateway's heartbeat expired is settled at the next sweep
  (within a minute of the death, not after the timeout). A living gateway's reservations are
  left alone however old, up to the timeout: a long stream is still running.
* the timeout passed (``RESERVATION_TIMEOUT``): its event was lost otherwise, or its gateway
  never said who it was.

Either way the row is written at the provider's usage when the relay recorded it next to the
reservation (``settled_from_relay_usage``), priced with what auth captured at reservation
time, and at the reserved amount only when nothing is known (``settled_by_sweeper``, usage
marked estimated). The synthetic event carries the request's own id, so a real event that
turns up later replaces the row once (the ledger's correction path) and never adds a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TypeVar

from google.protobuf.message import DecodeError

from unigate.charge import quota_of
from unigate.gateways import GatewayRegistry
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.quota import BATCH_HOLDER, OpenReservation, QuotaStore
from unigate.v1 import common_pb2, events_pb2
from unigate_billing.ledger import RECOVERED_CODE, SWEPT_CODE, Ledger

log = logging.getLogger(__name__)

__all__ = ["RECOVERED_CODE", "SWEPT_CODE", "ReservationSweeper"]

# Open reservations read at most per sweep (the oldest first; the rest wait for the next).
_MAX_SCAN = 20_000


M = TypeVar("M", events_pb2.ReservationContext, events_pb2.RelayUsage)


def _parsed(kind: type[M], raw: bytes) -> M | None:
    if not raw:
        return None
    try:
        return kind.FromString(raw)
    except DecodeError:
        log.error("unreadable %s in a reservation; settling without it", kind.__name__)
        return None


def orphan_event(r: OpenReservation) -> events_pb2.UsageEvent:
    """The usage event the gateway would have published, from what Redis still knows."""
    ctx = _parsed(events_pb2.ReservationContext, r.context)
    used = _parsed(events_pb2.RelayUsage, r.relay_usage)
    event = events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=(ctx.request_id if ctx else "") or r.reservation_id,
        reservation_id=r.reservation_id,
        reserved_quota=r.amount,
        user_id=r.user_id,
        token_id=r.token_id,
        quota=r.amount,
        usage=common_pb2.Usage(estimated=True),
        error_code=SWEPT_CODE,
        created_at_ms=r.created_ms,
    )
    if ctx is not None:
        event.token_name, event.group, event.client_ip = ctx.token_name, ctx.group, ctx.client_ip
        event.model, event.endpoint, event.stream = ctx.model, ctx.endpoint, ctx.stream
        event.pricing.CopyFrom(ctx.pricing)
    if used is not None:
        event.channel_id, event.upstream_model = used.channel_id, used.upstream_model
        event.channels_tried.append(used.channel_id)
        if not used.incomplete and ctx is not None and ctx.HasField("pricing"):
            event.usage.CopyFrom(used.usage)
            event.quota = quota_of(ctx.pricing, used.usage)
            event.status_code = used.status_code
            event.first_token_ms = used.first_token_ms
            event.latency_ms = used.upstream_ms
            event.error_code = RECOVERED_CODE
    return event


class ReservationSweeper:
    def __init__(
        self,
        ledger: Ledger,
        quota: QuotaStore,
        gateways: GatewayRegistry,
        *,
        timeout_seconds: float,
        interval_seconds: float,
        dead_gateway_grace_seconds: float = 5.0,
    ) -> None:
        self._ledger = ledger
        self._quota = quota
        self._gateways = gateways
        self._timeout_ms = int(timeout_seconds * 1000)
        # A dead gateway's reservations younger than this wait for the next sweep (clock skew
        # between auth, which stamps reservations, and billing).
        self._grace_ms = int(min(dead_gateway_grace_seconds, timeout_seconds) * 1000)
        self._interval = interval_seconds
        self._owner = f"{os.uname().nodename}:{os.getpid()}"
        self.swept = 0
        self.spares_released = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                lease_ms = int(self._interval * 3000)
                if await self._quota.try_lead("sweeper", self._owner, lease_ms):
                    await self.sweep_once()
            except Exception:
                log.exception("reservation sweep failed; will retry")

    async def orphans(self, now_ms: int) -> list[OpenReservation]:
        """Open reservations of dead gateways, and any past the timeout (oldest first);
        unbound spare reservations past their expiry are released on the way, with no row."""
        scanned = await self._quota.stale_reservations(now_ms - self._grace_ms, limit=_MAX_SCAN)
        # A Message Batch's reservation lives as long as its batch (up to a day); auth's
        # poller bills its results and releases it (unigate_auth.message_batches).
        scanned = [r for r in scanned if r.gateway_id != BATCH_HOLDER]
        await self._release_spares([r for r in scanned if r.spare_expiry_ms])
        scanned = [r for r in scanned if not r.spare_expiry_ms]
        expired_before = now_ms - self._timeout_ms
        young = [r for r in scanned if r.created_ms > expired_before]
        alive = await self._gateways.alive({r.gateway_id for r in young if r.gateway_id})
        return [
            r
            for r in scanned
            if r.created_ms <= expired_before or (r.gateway_id and r.gateway_id not in alive)
        ]

    async def _release_spares(self, unbound: list[OpenReservation]) -> None:
        """Spares a gateway never bound to a request (it died, or lost Redis when it would
        have released them): no request used them, so they go back with no charge. The
        script releases only a spare still unbound and expired by Redis' clock, atomically
        against a late binding, which then fails and its request is authorized afresh."""
        if not unbound:
            return
        released = await self._quota.release_spares(
            [(r.reservation_id, r.token_id, r.user_id) for r in unbound], only_expired=True
        )
        self.spares_released += released
        log.info("released %d unused spare reservations", released)

    async def sweep_once(self) -> int:
        now_ms = int(time.time() * 1000)
        orphans = await self.orphans(now_ms)
        if not orphans:
            return 0
        events = {r.reservation_id: orphan_event(r) for r in orphans}
        applied = {a.request_id: a for a in await self._ledger.apply(list(events.values()))}
        # Where a row already exists (billed, but its settlement never reached Redis), settle
        # with what was actually charged.
        settlements = await self._ledger.settlements(
            events.values(), applied, {r.reservation_id: r.unlimited for r in orphans}
        )
        await self._quota.settle(settlements)
        new = [events[r.reservation_id] for r in orphans]
        new = [e for e in new if e.request_id in applied]
        recovered = sum(e.error_code == RECOVERED_CODE for e in new)
        dead = sum(r.created_ms > now_ms - self._timeout_ms for r in orphans)
        log.warning(
            "settled %d orphaned reservations (%d of dead gateways, %d timed out): %d at the "
            "provider's usage the relay recorded, %d at their reserved amount; %d were billed "
            "already",
            len(new),
            dead,
            len(orphans) - dead,
            recovered,
            len(new) - recovered,
            len(orphans) - len(new),
        )
        self.swept += len(new)
        return len(new)
