"""Root's quota adjustments (``unigate user|token quota``): add to or set a balance, with a
manage row in the ledger, whoever's it is (root's own included, unlike ``UpdateUser``)."""

from __future__ import annotations

from typing import Literal

from unigate import admin
from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, invalid, rpc
from unigate_auth.admin.sessions import ROLE_ROOT, Caller

_TARGETS: dict[str, Literal["user", "token"]] = {"user": "user", "token": "token"}


class QuotaRpcs(AdminBase):
    @rpc(ROLE_ROOT)
    async def AdjustQuota(
        self, caller: Caller, req: admin_pb2.QuotaAdjustment
    ) -> admin_pb2.QuotaChange:
        target = _TARGETS.get(req.target)
        if target is None:
            raise invalid('the target is "user" or "token"')
        change = await admin.adjust_quota(
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
