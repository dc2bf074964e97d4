"""Settles reservations whose request never reported back (its gateway died, its event was
lost) at the reserved amount, through the same ledger path as real usage.

The synthetic event carries the request id, so if the real event turns up later it is a
duplicate and changes nothing; the log row says ``settled_by_sweeper``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.quota import OpenReservation, QuotaStore, Settlement
from unigate.v1 import common_pb2, events_pb2
from unigate_billing.ledger import Ledger

log = logging.getLogger(__name__)

SWEPT_CODE = "settled_by_sweeper"


def _event(r: OpenReservation) -> events_pb2.UsageEvent:
    return events_pb2.UsageEvent(
        schema_version=USAGE_SCHEMA_VERSION,
        request_id=r.reservation_id,
        reservation_id=r.reservation_id,
        reserved_quota=r.amount,
        user_id=r.user_id,
        token_id=r.token_id,
        quota=r.amount,
        usage=common_pb2.Usage(estimated=True),
        error_code=SWEPT_CODE,
        created_at_ms=r.created_ms,
    )


class ReservationSweeper:
    def __init__(
        self, ledger: Ledger, quota: QuotaStore, *, timeout_seconds: float, interval_seconds: float
    ) -> None:
        self._ledger = ledger
        self._quota = quota
        self._timeout_ms = int(timeout_seconds * 1000)
        self._interval = interval_seconds
        self._owner = f"{os.uname().nodename}:{os.getpid()}"
        self.swept = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                lease_ms = int(self._interval * 3000)
                if await self._quota.try_lead("sweeper", self._owner, lease_ms):
                    await self.sweep_once()
            except Exception:
                log.exception("reservation sweep failed; will retry")

    async def sweep_once(self) -> int:
        stale = await self._quota.stale_reservations(int(time.time() * 1000) - self._timeout_ms)
        if not stale:
            return 0
        applied = {a.request_id: a for a in await self._ledger.apply([_event(r) for r in stale])}
        # Where a row already exists (billed, but its settlement never reached Redis), settle
        # with what was actually charged.
        billed = await self._ledger.committed(
            [r.reservation_id for r in stale if r.reservation_id not in applied]
        )
        await self._quota.settle(
            [
                Settlement(
                    reservation_id=r.reservation_id,
                    token_id=r.token_id,
                    user_id=r.user_id,
                    charged=r.amount
                    if r.reservation_id in applied
                    else billed.get(r.reservation_id, (0, 0))[0],
                    unlimited=r.unlimited,
                    xid=applied[r.reservation_id].xid
                    if r.reservation_id in applied
                    else billed.get(r.reservation_id, (0, 0))[1],
                    only_if_open=r.reservation_id not in applied,
                )
                for r in stale
            ]
        )
        late = len(stale) - len(applied)
        log.warning(
            "settled %d stale reservations at their reserved amount (%d were already billed)",
            len(applied),
            late,
        )
        self.swept += len(applied)
        return len(applied)
