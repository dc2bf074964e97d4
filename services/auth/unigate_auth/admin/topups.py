"""Quota given to a user as a top-up: an admin's (One API's ``POST /api/topup``) and the
sign-up rewards (``QuotaForNewUser``, ``QuotaForInvitee``, ``QuotaForInviter``).

Each is written as redeeming a code is (``unigate_billing.redemptions``): the balance and a
top-up row (type 1) of the ledger in one transaction under the user's row lock, so a reward
is in the ledger exactly when it is in the balance, and the row's amount is what was added.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import asyncpg

from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, invalid, not_found, rpc
from unigate_auth.admin.sessions import ROLE_ADMIN, Caller
from unigate_auth.admin.users import target_user

log = logging.getLogger(__name__)

LOG_TYPE_TOPUP = 1
MAX_REMARK = 255


@dataclass(frozen=True, slots=True)
class Credit:
    before: int
    after: int
    log_id: int


async def credit_topup(conn: asyncpg.Connection, user_id: int, amount: int, content: str) -> Credit:
    """Add ``amount`` (> 0) to a user's quota with its top-up row; the caller's transaction
    makes both one write."""
    if amount <= 0:
        raise ValueError("a top-up adds a positive quota")
    row = await conn.fetchrow("SELECT username, quota FROM users WHERE id = $1 FOR UPDATE", user_id)
    if row is None:
        raise ValueError(f"no user with id {user_id}")
    now = int(time.time())
    await conn.execute(
        "UPDATE users SET quota = quota + $2, updated_time = $3 WHERE id = $1",
        user_id,
        amount,
        now,
    )
    log_id: int = await conn.fetchval(
        "INSERT INTO logs (type, created_at, user_id, username, quota, content)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        LOG_TYPE_TOPUP,
        now,
        user_id,
        row["username"],
        amount,
        content,
    )
    before = int(row["quota"])
    return Credit(before=before, after=before + amount, log_id=log_id)


class TopUpRpcs(AdminBase):
    async def _forget_balance(self, *user_ids: int) -> None:
        try:
            await self._quota.forget_balances(tokens=[], user_ids=list(user_ids))
        except Exception:
            # Committed; the cached balance expires on its own and the new one loads then.
            log.exception("top-up committed, but the cached balance could not be dropped")

    @rpc(ROLE_ADMIN)
    async def AdminTopUp(
        self, caller: Caller, req: admin_pb2.AdminTopUpRequest
    ) -> admin_pb2.QuotaChange:
        if req.quota <= 0:
            raise invalid("quota must be a positive number of quota units")
        if len(req.remark) > MAX_REMARK:
            raise invalid(f"a remark has at most {MAX_REMARK} characters")
        if req.user_id != caller.id:
            # As for editing a user: an admin tops up users below it, root anyone.
            await target_user(self._pool, caller, "id = $1", req.user_id)
        content = req.remark.strip() or (
            f"topped up by {caller.username!r} (#{caller.id}) through the API: +{req.quota}"
        )
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", req.user_id):
                raise not_found("user")
            credit = await credit_topup(conn, req.user_id, req.quota, content)
        await self._forget_balance(req.user_id)
        await self._broadcast("user", [req.user_id])
        return admin_pb2.QuotaChange(before=credit.before, after=credit.after, log_id=credit.log_id)
