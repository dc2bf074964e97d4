"""The public status (One API's ``/api/status``): version, start time, whether registration
is open, the quota per unit, the system's name, logo, footer and chat link, which
external logins are offered; and the public texts One API serves on routes of their own
(notice, about, home page content)."""

from __future__ import annotations

from unigate.pricing import QUOTA_PER_USD
from unigate.v1 import admin_pb2
from unigate_auth.admin.oauth_rpcs import OPTION_KEYS, enabled
from unigate_auth.admin.rpc import AdminBase, Empty, public

# SystemStatus field ← One API's option name; all public by One API's design.
_PUBLIC_OPTIONS = {
    "system_name": "SystemName",
    "logo": "Logo",
    "footer_html": "Footer",
    "chat_link": "ChatLink",
    "notice": "Notice",
    "about": "About",
    "home_page_content": "HomePageContent",
}


class StatusRpcs(AdminBase):
    @public
    async def GetStatus(self, _: Empty) -> admin_pb2.SystemStatus:
        rows = await self._pool.fetch(
            "SELECT key, value FROM options WHERE key = ANY($1::text[])",
            [*OPTION_KEYS, "WeChatAccountQRCodeImageURL", *_PUBLIC_OPTIONS.values()],
        )
        options = {r["key"]: r["value"] for r in rows}
        texts = {field: options.get(key) or "" for field, key in _PUBLIC_OPTIONS.items()}
        texts["system_name"] = texts["system_name"] or "unigate"
        oidc_on = enabled("oidc", options)
        # Client ids are public (they travel in every authorization URL); secrets never.
        return admin_pb2.SystemStatus(
            version=self._version,
            start_time=self._started,
            register_enabled=(options.get("RegisterEnabled") or "").lower() == "true",
            quota_per_unit=QUOTA_PER_USD,
            **texts,
            github_oauth=enabled("github", options),
            github_client_id=options.get("GitHubClientId", ""),
            lark_client_id=options.get("LarkClientId", "") if enabled("lark", options) else "",
            wechat_login=enabled("wechat", options),
            wechat_qrcode=options.get("WeChatAccountQRCodeImageURL", ""),
            oidc=oidc_on,
            oidc_client_id=options.get("OidcClientId", "") if oidc_on else "",
            oidc_well_known=options.get("OidcWellKnown", "") if oidc_on else "",
            oidc_authorization_endpoint=options.get("OidcAuthorizationEndpoint", "")
            if oidc_on
            else "",
            server_address=options.get("ServerAddress", ""),
        )
