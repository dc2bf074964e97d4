"""Invitations (One API's ``aff_code``): every user has a code to hand out; whoever signs up
with it is recorded as invited by them (``users.inviter_id``), and the options
``QuotaForNewUser``, ``QuotaForInvitee`` and ``QuotaForInviter`` are credited as top-ups.

The rewards are written in the transaction that creates the new user (``reward_signup``), so
each is in the ledger exactly once: a retried or raced sign-up either creates the user and
every reward, or nothing (the username and the address are unique).
"""

from __future__ import annotations

import secrets

import asyncpg

from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, Empty, rpc
from unigate_auth.admin.sessions import ROLE_USER, Caller
from unigate_auth.admin.topups import credit_topup

INVITATION_OPTIONS = ("QuotaForNewUser", "QuotaForInvitee", "QuotaForInviter")
# Codes are handed out and typed: no look-alike characters. 8 of 31 → 40 bits, and unique.
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_LENGTH = 8
MAX_AFF_CODE = 32


def new_aff_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def _quota(options: dict[str, str], key: str) -> int:
    try:
        return max(int(options.get(key) or 0), 0)
    except ValueError:
        return 0


async def assign_aff_code(conn: asyncpg.Connection, user_id: int) -> str:
    """The user's code, made now if it has none (a collision, one in 10^12, tries again)."""
    for _ in range(5):
        code = new_aff_code()
        async with conn.transaction():  # a savepoint: a collision must not end the caller's
            try:
                made: str | None = await conn.fetchval(
                    "UPDATE users SET aff_code = coalesce(aff_code, $2) WHERE id = $1"
                    " RETURNING aff_code",
                    user_id,
                    code,
                )
            except asyncpg.UniqueViolationError:
                continue
        if made is None:
            raise ValueError(f"no user with id {user_id}")
        return made
    raise RuntimeError("could not make a unique invitation code")


async def inviter_of(pool: asyncpg.Pool, aff_code: str) -> int:
    """The id of the user whose code this is; 0 for none (One API ignores unknown codes)."""
    code = aff_code.strip().upper()
    if not code or len(code) > MAX_AFF_CODE:
        return 0
    found = await pool.fetchval("SELECT id FROM users WHERE aff_code = $1", code)
    return int(found) if found is not None else 0


async def reward_signup(
    conn: asyncpg.Connection, user_id: int, inviter_id: int, options: dict[str, str]
) -> list[int]:
    """Credit the sign-up rewards in the caller's transaction; the users credited."""
    credited: list[int] = []
    if quota := _quota(options, "QuotaForNewUser"):
        await credit_topup(conn, user_id, quota, f"sign-up gift: +{quota}")
        credited.append(user_id)
    if inviter_id:
        if quota := _quota(options, "QuotaForInvitee"):
            await credit_topup(conn, user_id, quota, f"invited by user #{inviter_id}: +{quota}")
            credited.append(user_id)
        if quota := _quota(options, "QuotaForInviter"):
            await credit_topup(conn, inviter_id, quota, f"invited user #{user_id}: +{quota}")
            credited.append(inviter_id)
    return sorted(set(credited))


class InvitationRpcs(AdminBase):
    @rpc(ROLE_USER)
    async def GetAffCode(self, caller: Caller, _: Empty) -> admin_pb2.AffCode:
        async with self._pool.acquire() as conn:
            return admin_pb2.AffCode(aff_code=await assign_aff_code(conn, caller.id))
