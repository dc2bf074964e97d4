"""Quota adjustments: ``adjust_quota`` (what ``UpdateUser``/``UpdateToken`` use to set a
balance) and root's ``AdjustQuota`` RPC (``unigate user|token quota``), which adds to or sets
a balance, with a manage row in the ledger, whoever's it is (root's own included)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import asyncpg

from unigate.quota import QuotaStore
from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, invalid, rpc
from unigate_auth.admin.sessions import ROLE_ROOT, Caller

log = logging.getLogger(__name__)

LOG_TYPE_MANAGE = 3
_TARGETS: dict[str, Literal["user", "token"]] = {"user": "user", "token": "token"}


@dataclass(frozen=True, slots=True)
class QuotaChange:
    before: int
    after: int
    log_id: int  # the type-3 (manage) ledger row recording it

    @property
    def delta(self) -> int:
        return self.after - self.before


async def adjust_quota(
    pool: asyncpg.Pool,
    *,
    target: Literal["user", "token"],
    target_id: int,
    actor_id: int,
    add: int | None = None,
    set_to: int | None = None,
    quota: QuotaStore | None,
) -> QuotaChange:
    """Add to (``add``, may be negative) or set (``set_to``) a user's quota or a token's
    remaining quota, and write a manage row saying who changed what by how much; a
    ValueError says what the request lacks.

    The balance and its ledger row are written in one transaction, under a row lock, so the
    row's before/after are exact even while billing charges the same balance. Afterwards the
    cached balance in Redis is dropped, as a redeem does and for the same reason: the next
    request reloads it from Postgres, instead of being judged against the old one for minutes.
    ``quota`` is required so that no caller forgets that; ``None`` only where nothing caches.
    """
    if (add is None) == (set_to is None):
        raise ValueError("give exactly one of add or set")
    if set_to is not None and set_to < 0:
        raise ValueError("a quota cannot be set below 0")
    if add == 0:
        raise ValueError("adding 0 changes nothing")
    now = int(time.time())
    async with pool.acquire() as conn, conn.transaction():
        actor = await conn.fetchval("SELECT username FROM users WHERE id = $1", actor_id)
        if actor is None:
            raise ValueError(f"no user with id {actor_id}")
        if target == "user":
            row = await conn.fetchrow(
                "SELECT id AS user_id, username, 0::bigint AS token_id, '' AS token_name,"
                " quota AS balance FROM users WHERE id = $1 FOR UPDATE",
                target_id,
            )
        else:
            row = await conn.fetchrow(
                "SELECT t.user_id, u.username, t.id AS token_id, t.name AS token_name,"
                " t.remain_quota AS balance FROM tokens t JOIN users u ON u.id = t.user_id"
                " WHERE t.id = $1 FOR UPDATE OF t",
                target_id,
            )
        if row is None:
            raise ValueError(f"no {target} with id {target_id}")
        before = int(row["balance"])
        after = before + add if add is not None else int(set_to or 0)
        if after < 0:
            raise ValueError(f"the {target}'s quota would become negative ({after})")
        if target == "user":
            await conn.execute(
                "UPDATE users SET quota = $2, updated_time = $3 WHERE id = $1",
                target_id,
                after,
                now,
            )
        else:
            await conn.execute(
                "UPDATE tokens SET remain_quota = $2 WHERE id = $1", target_id, after
            )
        what = (
            f"user {row['username']!r} (#{row['user_id']})"
            if target == "user"
            else f"token {row['token_name']!r} (#{row['token_id']}) of user {row['username']!r}"
        )
        log_id: int = await conn.fetchval(
            "INSERT INTO logs (type, created_at, user_id, username, token_id, token_name, quota,"
            " content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            LOG_TYPE_MANAGE,
            now,
            row["user_id"],
            row["username"],
            row["token_id"],
            row["token_name"],
            after - before,
            f"{actor!r} (#{actor_id}) {'added' if add is not None else 'set'} quota of {what}:"
            f" {before} -> {after} ({after - before:+d})",
        )
    if quota is not None:
        try:
            await quota.forget_balances(
                tokens=[(target_id, row["user_id"])] if target == "token" else [],
                user_ids=[target_id] if target == "user" else [],
            )
        except Exception:
            # Committed, so not a failure; the stale cached balance expires on its own.
            log.exception("quota changed, but could not drop the cached balance")
    return QuotaChange(before=before, after=after, log_id=log_id)


class QuotaRpcs(AdminBase):
    @rpc(ROLE_ROOT)
    async def AdjustQuota(
        self, caller: Caller, req: admin_pb2.QuotaAdjustment
    ) -> admin_pb2.QuotaChange:
        target = _TARGETS.get(req.target)
        if target is None:
            raise invalid('the target is "user" or "token"')
        change = await adjust_quota(
            self._pool,
            target=target,
            target_id=req.id,
            actor_id=caller.id,
            add=req.add if req.HasField("add") else None,
            set_to=req.set_to if req.HasField("set_to") else None,
            quota=self._quota,
        )
        await self._broadcast(target, [req.id])
        return admin_pb2.QuotaChange(before=change.before, after=change.after, log_id=change.log_id)
