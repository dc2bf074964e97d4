"""Cached balances in Redis: loading them when Redis has none, refreshing them while a key is in
use, and what Authorize does while Redis cannot be reached.

- **Load** (nothing cached): if Redis lost its state (``QuotaStore.state_intact`` is false),
  the reservations of requests not yet billed went with it, and Postgres lacks their charges
  until billing applies them; so the load first waits until billing has applied everything
  published so far (``Backlog``), else the request is refused 503 and no quota is handed out
  twice. Then the balances are read with their snapshot and written exactly (``unigate.quota``).
- **Refresh**: a key in use has its balances re-read every ``BALANCE_REFRESH`` seconds in the
  background, which heals drift and re-arms their lifetime, so they keep serving through a
  Postgres outage of up to ``STALE_IF_ERROR`` seconds (a failed refresh changes nothing).
- **Redis outage**: fail closed (503 ``quota_store_unavailable``) unless ``REDIS_OUTAGE_BUDGET``
  is set; then each key may spend that many quota units per auth process unreserved (its
  usage is billed as usual, and settles into Redis once it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from unigate import errors
from unigate.quota import QuotaStore, ReserveOutcome, ReserveResult
from unigate_auth.backlog import Backlog, BacklogPending
from unigate_auth.settings import AuthSettings
from unigate_auth.store import AuthStore, TokenRecord

log = logging.getLogger(__name__)

_MAX_TRACKED = 100_000


class BalanceKeeper:
    def __init__(
        self, settings: AuthSettings, store: AuthStore, quota: QuotaStore, backlog: Backlog
    ) -> None:
        self._settings = settings
        self._store = store
        self._quota = quota
        self._backlog = backlog
        # token id -> monotonic time of its last load or refresh started by this process
        self._refreshed: dict[int, float] = {}
        self._refreshing: set[asyncio.Task[None]] = set()
        # Quota granted per key while Redis was unreachable (REDIS_OUTAGE_BUDGET).
        self._outage_spent: dict[int, int] = {}

    # ---- load ---------------------------------------------------------------------------
    async def load(self, token: TokenRecord) -> None:
        if not await self._quota.state_intact(token.user_id):
            try:
                await self._backlog.wait_applied()
            except BacklogPending as exc:
                log.warning("balance of key %d not loaded: %s", token.id, exc)
                raise errors.ServiceUnavailable(
                    "Balances are being reconciled with the usage ledger; please retry shortly.",
                    code="balance_reconciling",
                ) from None
            # Everything published before Redis lost its state is in Postgres now: loads of
            # any key may trust it from here on.
            await self._quota.mark_intact(token.user_id)
        await self._quota.begin_load(
            token_id=None if token.unlimited_quota else token.id, user_id=token.user_id
        )
        read = await self._store.balances(token.id)
        if read is None:
            raise errors.AuthenticationFailed("This API key no longer exists.")
        await self._quota.load_balances(
            token_id=token.id,
            token_balance=None if token.unlimited_quota else read.token_balance,
            user_id=read.user_id,
            user_balance=read.user_balance,
            snapshot=read.snapshot,
        )
        self._mark(token.id)

    # ---- refresh ------------------------------------------------------------------------
    def _mark(self, token_id: int) -> None:
        if len(self._refreshed) >= _MAX_TRACKED:
            self._refreshed.clear()
        self._refreshed[token_id] = time.monotonic()

    def refresh_soon(self, token: TokenRecord) -> None:
        """After a reservation: start a background refresh if this key's is due."""
        last = self._refreshed.get(token.id)
        if last is None:
            # First use seen by this process: the balance is fresh enough for now.
            self._mark(token.id)
            return
        if time.monotonic() - last < self._settings.balance_refresh_seconds:
            return
        self._mark(token.id)
        task = asyncio.create_task(self._refresh(token))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _refresh(self, token: TokenRecord) -> None:
        owned = (False, False)
        try:
            owned = await self._quota.begin_refresh(
                token_id=None if token.unlimited_quota else token.id, user_id=token.user_id
            )
            if not any(owned):
                return  # another process is refreshing these balances
            read = await self._store.balances(token.id)
            if read is None:
                return  # the key is gone
            await self._quota.refresh_balances(read, token=owned[0], user=owned[1])
            owned = (False, False)  # done: the script removed its records
        except Exception as exc:
            # Postgres (or Redis) unreachable: the cached balances keep serving until their
            # lifetime (STALE_IF_ERROR) runs out.
            log.warning("could not refresh the balances of key %d: %r", token.id, exc)
        finally:
            if any(owned):
                with contextlib.suppress(Exception):
                    await self._quota.abandon_refresh(
                        token_id=token.id if owned[0] else None,
                        user_id=token.user_id,
                        user=owned[1],
                    )

    # ---- Redis outage -------------------------------------------------------------------
    def outage_reserve(self, token_id: int, amount: int, exc: BaseException) -> ReserveResult:
        budget = self._settings.redis_outage_budget
        spent = self._outage_spent.get(token_id, 0)
        if budget <= 0 or spent + amount > budget:
            log.warning("quota store unreachable (%r): refusing key %d", exc, token_id)
            raise errors.ServiceUnavailable(
                "The quota service is unavailable; please retry shortly.",
                code="quota_store_unavailable",
            )
        self._outage_spent[token_id] = spent + amount
        log.warning(
            "quota store unreachable (%r): key %d served from the outage budget (%d of %d)",
            exc,
            token_id,
            spent + amount,
            budget,
        )
        return ReserveResult(ReserveOutcome.RESERVED, amount=amount)

    def redis_back(self) -> None:
        """Redis answered: the outage budget is spent no more. What it granted is billed as
        usual and settles into Redis; the next outage starts a fresh budget."""
        if self._outage_spent:
            log.warning(
                "quota store reachable again; %d units were granted from the outage budget",
                sum(self._outage_spent.values()),
            )
            self._outage_spent.clear()
