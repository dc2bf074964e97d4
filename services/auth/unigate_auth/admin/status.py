"""The public status (One API's ``/api/status``): version, start time, whether registration
is open, the quota per unit and the system's name."""

from __future__ import annotations

from unigate.pricing import QUOTA_PER_USD
from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, Empty, public


class StatusRpcs(AdminBase):
    @public
    async def GetStatus(self, _: Empty) -> admin_pb2.SystemStatus:
        return admin_pb2.SystemStatus(
            version=self._version,
            start_time=self._started,
            register_enabled=(await self._option("RegisterEnabled") or "").lower() == "true",
            quota_per_unit=QUOTA_PER_USD,
            system_name=await self._option("SystemName") or "unigate",
        )
