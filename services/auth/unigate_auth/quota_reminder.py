"""Low-balance reminders (One API's ``QuotaRemindThreshold`` option, in quota units; unset
or 0: off). Every ``QUOTA_REMIND_FREQUENCY`` seconds one auth instance (a Redis lease) looks
for users whose balance fell below the threshold since they were last told: each is mailed
(as One API does) and root and the webhooks are told (``unigate.alerts``). A user is told
once per fall: ``users.quota_reminded_at`` marks it, and is cleared once the balance is back
at or above the threshold (a top-up), so the next fall is told again.

Balances change in billing's ledger transaction, which must stay lean; a sweep a minute
later costs one indexed-enough query and keeps the request path and the ledger untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import asyncpg

from unigate.alerts import Alert, Notifier
from unigate.pricing import QUOTA_PER_USD
from unigate.quota import QuotaStore

log = logging.getLogger(__name__)


class QuotaReminder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        quota: QuotaStore,
        alerts: Notifier,
        *,
        frequency_seconds: float,
    ) -> None:
        self._pool = pool
        self._quota = quota
        self._alerts = alerts
        self._frequency = frequency_seconds
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._frequency)
            try:
                lease_ms = int(self._frequency * 2000) + 1000
                if await self._quota.try_lead("quota-reminder", self._owner, lease_ms):
                    await self.sweep()
            except Exception:
                log.exception("low-quota sweep failed")

    async def _threshold(self) -> int:
        raw = await self._pool.fetchval(
            "SELECT value FROM options WHERE key = 'QuotaRemindThreshold'"
        )
        try:
            return max(int(float(raw or 0)), 0)
        except ValueError:
            log.warning("option QuotaRemindThreshold is not a number: %r; ignored", raw)
            return 0

    async def sweep(self) -> list[int]:
        """Tell the users newly below the threshold; returns their ids."""
        threshold = await self._threshold()
        if threshold <= 0:
            return []
        now = int(time.time())
        async with self._pool.acquire() as conn, conn.transaction():
            # Back above: the next fall is a new one.
            await conn.execute(
                "UPDATE users SET quota_reminded_at = 0"
                " WHERE quota_reminded_at > 0 AND quota >= $1",
                threshold,
            )
            # Only users who spend (used_quota > 0): a new account opened with a small
            # balance has not "run low". One conditional UPDATE: told once, whoever sweeps.
            low = await conn.fetch(
                "UPDATE users SET quota_reminded_at = $2"
                " WHERE status = 1 AND quota < $1 AND used_quota > 0 AND quota_reminded_at = 0"
                " RETURNING id, username, email, quota",
                threshold,
                now,
            )
        for user in low:
            balance = f"${user['quota'] / QUOTA_PER_USD:.2f}"
            self._alerts.send(
                Alert(
                    "quota_low",
                    f"Low balance: {user['username']} has {balance} left",
                    f"User #{user['id']} ({user['username']}) has {user['quota']} quota"
                    f" ({balance}) left, below the reminder threshold of {threshold}.",
                    {"user_id": user["id"], "username": user["username"], "quota": user["quota"]},
                    also_to=(user["email"],) if user["email"] else (),
                )
            )
            log.info("user %d reminded of a low balance (%d)", user["id"], user["quota"])
        return [u["id"] for u in low]
