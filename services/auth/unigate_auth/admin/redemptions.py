"""Redemption codes: an admin creates, edits and deletes them; a user redeems one into its
balance. Creating and redeeming are billing's (redeeming writes the ledger's top-up row,
exactly once under races), reached over gRPC (``unigate_auth.billing_client``)."""

from __future__ import annotations

from unigate.v1 import admin_pb2
from unigate_auth.admin import records
from unigate_auth.admin.records import REDEMPTION_COLUMNS, fetch_page, like, page_of
from unigate_auth.admin.rpc import (
    AdminBase,
    Empty,
    check_name,
    check_status,
    invalid,
    not_found,
    rpc,
)
from unigate_auth.admin.sessions import ROLE_ADMIN, ROLE_USER, Caller

STATUS_USED = 3


class RedemptionRpcs(AdminBase):
    @rpc(ROLE_USER)
    async def Redeem(
        self, caller: Caller, req: admin_pb2.RedeemRequest
    ) -> admin_pb2.RedeemResponse:
        amount = await self._billing.redeem(req.key.strip(), caller.id)
        return admin_pb2.RedeemResponse(quota=amount)

    @rpc(ROLE_ADMIN)
    async def ListRedemptions(
        self, caller: Caller, req: admin_pb2.ListRequest
    ) -> admin_pb2.RedemptionList:
        limit, offset = page_of(req.page, req.size)
        where, args = "", list[object]()
        if req.keyword:
            where = "WHERE name ILIKE $1 OR id::text = $2"
            args = [like(req.keyword), req.keyword]
        total, rows = await fetch_page(
            self._pool, "redemptions", REDEMPTION_COLUMNS, where, args, "id DESC", limit, offset
        )
        return admin_pb2.RedemptionList(
            redemptions=[records.redemption_message(r) for r in rows], total=total
        )

    async def _redemption(self, redemption_id: int) -> admin_pb2.Redemption:
        row = await self._pool.fetchrow(
            f"SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE id = $1", redemption_id
        )
        if row is None:
            raise not_found("redemption")
        return records.redemption_message(row)

    @rpc(ROLE_ADMIN)
    async def GetRedemption(self, caller: Caller, req: admin_pb2.IdRequest) -> admin_pb2.Redemption:
        return await self._redemption(req.id)

    @rpc(ROLE_ADMIN)
    async def CreateRedemptions(
        self, caller: Caller, req: admin_pb2.RedemptionInput
    ) -> admin_pb2.Names:
        codes = await self._billing.create_redemptions(
            req.name, req.quota, req.count or 1, created_by=caller.id
        )
        return admin_pb2.Names(names=codes)

    @rpc(ROLE_ADMIN)
    async def UpdateRedemption(
        self, caller: Caller, req: admin_pb2.RedemptionInput
    ) -> admin_pb2.Redemption:
        current = await self._redemption(req.id)
        if current.status == STATUS_USED:
            raise invalid("a used redemption code cannot be changed")
        sets: dict[str, object] = {}
        if req.HasField("name"):
            sets["name"] = check_name(req.name, "redemption")
        if req.HasField("quota"):
            if req.quota <= 0:
                raise invalid("a redemption code must be worth a positive quota")
            sets["quota"] = req.quota
        if req.HasField("status"):
            sets["status"] = check_status(req.status, "redemption")
        if sets:
            columns = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(sets))
            # status <> 3 again: a code redeemed meanwhile stays as it was used.
            await self._pool.execute(
                f"UPDATE redemptions SET {columns} WHERE id = $1 AND status <> 3",
                req.id,
                *sets.values(),
            )
        return await self._redemption(req.id)

    @rpc(ROLE_ADMIN)
    async def DeleteRedemption(self, caller: Caller, req: admin_pb2.IdRequest) -> Empty:
        if await self._pool.fetchval("DELETE FROM redemptions WHERE id = $1 RETURNING id", req.id):
            return Empty()
        raise not_found("redemption")
