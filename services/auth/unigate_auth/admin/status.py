"""The public status (One API's ``/api/status``): version, start time, whether registration
is open and how (email verification, Turnstile and its site key), the top-up link, the quota
per unit and the system's name: what One API's front end reads."""

from __future__ import annotations

from unigate.pricing import QUOTA_PER_USD
from unigate.v1 import admin_pb2
from unigate_auth.admin.rpc import AdminBase, Empty, public


class StatusRpcs(AdminBase):
    @public
    async def GetStatus(self, _: Empty) -> admin_pb2.SystemStatus:
        rows = await self._pool.fetch(
            "SELECT key, value FROM options WHERE key = ANY($1::text[])", list(_READ)
        )
        options = {r["key"]: r["value"] for r in rows}

        def on(key: str, default: bool = False) -> bool:
            value = (options.get(key) or "").strip().lower()
            return default if not value else value == "true"

        return admin_pb2.SystemStatus(
            version=self._version,
            start_time=self._started,
            register_enabled=on("RegisterEnabled"),
            quota_per_unit=QUOTA_PER_USD,
            system_name=options.get("SystemName") or "unigate",
            email_verification=on("EmailVerificationEnabled"),
            turnstile_check=on("TurnstileCheckEnabled"),
            # The site key is public (it is in every page with the widget); the secret never.
            turnstile_site_key=options.get("TurnstileSiteKey", ""),
            top_up_link=options.get("TopUpLink", ""),
            password_register_enabled=on("PasswordRegisterEnabled", default=True),
        )


_READ = (
    "RegisterEnabled",
    "SystemName",
    "EmailVerificationEnabled",
    "TurnstileCheckEnabled",
    "TurnstileSiteKey",
    "TopUpLink",
    "PasswordRegisterEnabled",
)
