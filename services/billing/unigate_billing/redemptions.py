"""Redemption codes (One API semantics): an admin mints codes worth some quota; a user redeems
one, once, and the quota is added to their balance with a top-up row in the ledger.

Redeeming is exactly once under any race: the code is claimed by a single conditional
``UPDATE ... WHERE status = 1 RETURNING``, which Postgres lets only one transaction win, and the
balance and the ledger row are written in that same transaction, so a failure anywhere leaves
the code unused and the balance untouched.

Afterwards the user's cached balance in Redis is dropped directly (``QuotaStore.forget_balances``)
rather than by broadcasting a ``user`` config change: the broadcast is fire-and-forget core NATS
(lost while NATS or a subscriber is reconnecting), whereas deleting the key before ``redeem``
returns means the very next request reloads the new balance from Postgres. Auth's token cache
holds no balances, so nothing else needs telling.
"""

from __future__ import annotations

import logging
import secrets
import time

import asyncpg

from unigate.quota import QuotaStore

log = logging.getLogger(__name__)

LOG_TYPE_TOPUP = 1
STATUS_UNUSED, STATUS_DISABLED, STATUS_USED = 1, 2, 3
# One API's limits for a batch of codes.
MAX_CODES_PER_BATCH = 100
MAX_NAME_LENGTH = 20


class RedemptionError(ValueError):
    """A code that cannot be redeemed (or created); the message is meant for the caller."""


class UnknownRedemption(RedemptionError):
    def __init__(self) -> None:
        super().__init__("invalid redemption code")


class RedemptionUsed(RedemptionError):
    def __init__(self) -> None:
        super().__init__("this redemption code has already been used")


class RedemptionDisabled(RedemptionError):
    def __init__(self) -> None:
        super().__init__("this redemption code has been disabled")


class UnknownUser(RedemptionError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"no user with id {user_id}")


def new_code() -> str:
    """32 hex characters (128 bits) from the OS's CSPRNG: unguessable, as in One API."""
    return secrets.token_hex(16)


async def create_redemptions(
    pool: asyncpg.Pool, name: str, quota: int, count: int, created_by: int
) -> list[str]:
    """Mint ``count`` unused codes worth ``quota`` each; returns them (stored in clear, as
    One API does, so an admin can list and hand them out later)."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise RedemptionError(f"a redemption name needs 1 to {MAX_NAME_LENGTH} characters")
    if quota <= 0:
        raise RedemptionError("a redemption code must be worth a positive quota")
    if not 1 <= count <= MAX_CODES_PER_BATCH:
        raise RedemptionError(f"create 1 to {MAX_CODES_PER_BATCH} codes at a time")
    codes = [new_code() for _ in range(count)]
    await pool.execute(
        "INSERT INTO redemptions (user_id, key, status, name, quota, created_time)"
        " SELECT $1, k, $2, $3, $4, $5 FROM unnest($6::text[]) AS k",
        created_by,
        STATUS_UNUSED,
        name,
        quota,
        int(time.time()),
        codes,
    )
    return codes


async def redeem(pool: asyncpg.Pool, code: str, user_id: int, *, quota: QuotaStore | None) -> int:
    """Add the code's quota to ``user_id`` once; returns the quota added.

    ``quota`` is the Redis balance store whose cached balance of this user is dropped after
    the commit. It is required so that no caller forgets it by accident (the top-up would then
    stay invisible until the cached balance expires); pass ``None`` only where no service
    caches balances.
    """
    now = int(time.time())
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchrow(
            "UPDATE redemptions SET status = $3, redeemed_time = $4, redeemed_by = $2"
            " WHERE key = $1 AND status = $5 RETURNING id, name, quota",
            code,
            user_id,
            STATUS_USED,
            now,
            STATUS_UNUSED,
        )
        if claimed is None:
            # Not claimable: find out why, for the message. (Read after the failed claim, so a
            # code used by a concurrent winner reads as used.)
            status = await conn.fetchval("SELECT status FROM redemptions WHERE key = $1", code)
            if status is None:
                raise UnknownRedemption()
            if status == STATUS_DISABLED:
                raise RedemptionDisabled()
            raise RedemptionUsed()
        amount = int(claimed["quota"])
        username = await conn.fetchval(
            "UPDATE users SET quota = quota + $2, updated_time = $3 WHERE id = $1"
            " RETURNING username",
            user_id,
            amount,
            now,
        )
        if username is None:
            raise UnknownUser(user_id)  # rolls back the claim too: the code stays usable
        await conn.execute(
            "INSERT INTO logs (type, created_at, user_id, username, quota, content)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            LOG_TYPE_TOPUP,
            now,
            user_id,
            username,
            amount,
            f"redeemed code {claimed['name']!r} (#{claimed['id']}) for {amount} quota",
        )
    if quota is not None:
        try:
            await quota.forget_balances(tokens=[], user_ids=[user_id])
        except Exception:
            # The top-up is committed and must not be reported as failed; the cached balance
            # expires on its own (quota.BALANCE_TTL_SECONDS) and the new one is loaded then.
            log.exception("redeemed, but could not drop the cached balance of user %d", user_id)
    return amount
