"""The public status (One API's ``/api/status``): what One API's front end reads — version,
start time, whether registration is open and how (email verification, Turnstile and its site
key, passwords), the top-up link, the quota per unit, the system's name, logo, footer and
chat link, which external logins are offered; and the public texts One API serves on routes
of their own (notice, about, home page content)."""

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
_READ = (
    *OPTION_KEYS,
    *_PUBLIC_OPTIONS.values(),
    "WeChatAccountQRCodeImageURL",
    "EmailVerificationEnabled",
    "TurnstileCheckEnabled",
    "TurnstileSiteKey",
    "TopUpLink",
    "PasswordRegisterEnabled",
)


class StatusRpcs(AdminBase):
    @public
    async def GetStatus(self, _: Empty) -> admin_pb2.SystemStatus:
        rows = await self._pool.fetch(
            "SELECT key, value FROM options WHERE key = ANY($1::text[])", sorted(set(_READ))
        )
        options = {r["key"]: r["value"] for r in rows}

        def on(key: str, default: bool = False) -> bool:
            value = (options.get(key) or "").strip().lower()
            return default if not value else value == "true"

        texts = {field: options.get(key) or "" for field, key in _PUBLIC_OPTIONS.items()}
        texts["system_name"] = texts["system_name"] or "unigate"
        oidc_on = enabled("oidc", options)
        # Client ids and the Turnstile site key are public (they travel in every authorization
        # URL, every page with the widget); secrets never.
        return admin_pb2.SystemStatus(
            version=self._version,
            start_time=self._started,
            register_enabled=on("RegisterEnabled"),
            quota_per_unit=QUOTA_PER_USD,
            **texts,
            email_verification=on("EmailVerificationEnabled"),
            turnstile_check=on("TurnstileCheckEnabled"),
            turnstile_site_key=options.get("TurnstileSiteKey", ""),
            top_up_link=options.get("TopUpLink", ""),
            password_register_enabled=on("PasswordRegisterEnabled", default=True),
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
