"""External logins and bindings (One API's ``/api/oauth/*``): GitHub, Lark, generic OIDC and
One API's WeChat server.

``StartOAuth`` opens a flow (``oauth/flows.py``: state, PKCE verifier, nonce, redirect URI,
and the user when a logged-in caller binds) and returns the provider's authorization URL.
``FinishOAuth`` takes the flow of the returned ``state`` (once: a replay, an expired or
unknown state, or another provider's is refused before any provider is asked), exchanges
the code with the provider module and then either binds the identity to the user who started
the flow (the same session must finish it) or logs in: the user bound to that identity, else
a new user when registration is open (option ``RegisterEnabled``; a closed registration
refuses an unknown identity). A user made so has no password (an empty hash, which no
password verifies) and must keep one external identity bound. Each identity is unique
(migration 0015): binding one that another user holds is refused.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
import grpc

from unigate.urls import base_url_problem
from unigate.v1 import admin_pb2
from unigate_auth.admin import records
from unigate_auth.admin.invitations import assign_aff_code, reward_signup
from unigate_auth.admin.records import USER_COLUMNS
from unigate_auth.admin.rpc import AdminBase, Failure, denied, invalid, public_or_user, rpc
from unigate_auth.admin.sessions import ROLE_USER, STATUS_ENABLED, Caller
from unigate_auth.oauth import github, lark, oidc, wechat
from unigate_auth.oauth.common import ExternalIdentity, ProviderRefused, ProviderUnreachable
from unigate_auth.oauth.flows import PendingFlow, pkce_challenge

log = logging.getLogger(__name__)
T = TypeVar("T")

# Provider → the users column holding its identity (never built from input: only these).
COLUMNS = {"github": "github_id", "lark": "lark_id", "oidc": "oidc_id", "wechat": "wechat_id"}
LABELS = {"github": "GitHub", "lark": "Lark", "oidc": "OIDC", "wechat": "WeChat"}
# The providers whose login is a browser redirect (WeChat's is a typed code).
REDIRECT_PROVIDERS = ("github", "lark", "oidc")
OPTION_KEYS = (
    "RegisterEnabled",
    "QuotaForNewUser",
    "ServerAddress",
    "GitHubOAuthEnabled",
    "GitHubClientId",
    "GitHubClientSecret",
    "LarkClientId",
    "LarkClientSecret",
    "WeChatAuthEnabled",
    "WeChatServerAddress",
    "WeChatServerToken",
    "OidcEnabled",
    "OidcClientId",
    "OidcClientSecret",
    "OidcWellKnown",
    "OidcAuthorizationEndpoint",
    "OidcTokenEndpoint",
    "OidcUserinfoEndpoint",
)
_MAX_CODE = 512


def _on(options: dict[str, str], key: str) -> bool:
    return options.get(key, "").lower() == "true"


def enabled(provider: str, options: dict[str, str]) -> bool:
    """One API's switches: GitHub, WeChat and OIDC by their ``…Enabled`` option (and a client
    id); Lark whenever its client id is set (One API has no switch for it)."""
    if provider == "github":
        return _on(options, "GitHubOAuthEnabled") and bool(options.get("GitHubClientId"))
    if provider == "lark":
        return bool(options.get("LarkClientId"))
    if provider == "oidc":
        return _on(options, "OidcEnabled") and bool(options.get("OidcClientId"))
    if provider == "wechat":
        return _on(options, "WeChatAuthEnabled") and bool(options.get("WeChatServerAddress"))
    return False


class OAuthRpcs(AdminBase):
    async def _oauth_options(self) -> dict[str, str]:
        rows = await self._pool.fetch(
            "SELECT key, value FROM options WHERE key = ANY($1::text[])", list(OPTION_KEYS)
        )
        return {r["key"]: r["value"] for r in rows}

    async def _provider_options(self, provider: str) -> dict[str, str]:
        if provider not in COLUMNS:
            raise invalid("provider is one of github, lark, oidc, wechat")
        options = await self._oauth_options()
        if not enabled(provider, options):
            raise denied(f"{LABELS[provider]} login is turned off")
        return options

    @public_or_user
    async def StartOAuth(
        self, caller: Caller | None, req: admin_pb2.OAuthStartRequest
    ) -> admin_pb2.OAuthStartResponse:
        if req.provider not in REDIRECT_PROVIDERS:
            raise invalid("provider is one of github, lark, oidc")
        await self._admit(req.client_ip)
        options = await self._provider_options(req.provider)
        base = (options.get("ServerAddress") or req.origin).rstrip("/")
        if not base or base_url_problem(base) is not None:
            raise invalid("no server address: set the option ServerAddress")
        redirect_uri = f"{base}/oauth/{req.provider}"
        # Discover first: a provider that cannot be read leaves no flow behind.
        provider = await self._guarded(oidc.discover(options)) if req.provider == "oidc" else None
        state, flow = await self._oauth_flows.open(
            req.provider, redirect_uri, caller.id if caller else 0
        )
        challenge = pkce_challenge(flow.verifier)
        ends = self._oauth_endpoints
        if req.provider == "github":
            url = github.authorize_url(
                ends.github, options["GitHubClientId"], redirect_uri, state, challenge
            )
        elif req.provider == "lark":
            url = lark.authorize_url(
                ends.lark_accounts, options["LarkClientId"], redirect_uri, state, challenge
            )
        else:
            assert provider is not None
            url = oidc.authorize_url(
                provider, options["OidcClientId"], redirect_uri, state, flow.nonce, challenge
            )
        return admin_pb2.OAuthStartResponse(state=state, authorize_url=url)

    @public_or_user
    async def FinishOAuth(
        self, caller: Caller | None, req: admin_pb2.OAuthFinishRequest
    ) -> admin_pb2.OAuthFinishResponse:
        flow = await self._oauth_flows.take(req.state)
        if flow is None or flow.provider != req.provider:
            raise denied("state is empty, expired, already used or not this login's")
        if not req.code or len(req.code) > _MAX_CODE:
            raise invalid("code is missing or too long")
        options = await self._provider_options(flow.provider)
        identity = await self._guarded(self._exchange(flow, req.code, options))
        return await self._conclude(flow.provider, identity, flow.user_id, caller, options)

    @public_or_user
    async def WeChatLogin(
        self, caller: Caller | None, req: admin_pb2.WeChatCodeRequest
    ) -> admin_pb2.OAuthFinishResponse:
        if not req.code or len(req.code) > _MAX_CODE:
            raise invalid("code is missing or too long")
        await self._admit(req.client_ip)
        options = await self._provider_options("wechat")
        identity = await self._guarded(
            wechat.identity(
                options["WeChatServerAddress"], options.get("WeChatServerToken", ""), req.code
            )
        )
        user_id = caller.id if caller else 0
        return await self._conclude("wechat", identity, user_id, caller, options)

    @rpc(ROLE_USER)
    async def UnbindOAuth(
        self, caller: Caller, req: admin_pb2.OAuthUnbindRequest
    ) -> admin_pb2.User:
        column = COLUMNS.get(req.provider)
        if column is None:
            raise invalid("provider is one of github, lark, oidc, wechat")
        others = " OR ".join(f"{c} IS NOT NULL" for c in COLUMNS.values() if c != column)
        # One statement: an account without a password keeps at least one way in.
        row = await self._pool.fetchrow(
            f"UPDATE users SET {column} = NULL, updated_time = $2 WHERE id = $1"
            f" AND (password_hash <> '' OR {others}) RETURNING {USER_COLUMNS}",
            caller.id,
            int(time.time()),
        )
        if row is None:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this account has no password: it keeps its last external login",
            )
        return records.user_message(row)

    # ---- the steps ---------------------------------------------------------------------
    async def _admit(self, client_ip: str) -> None:
        wait = await self._oauth_flows.admit(client_ip)
        if wait:
            raise Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many external login attempts; try again in {wait} seconds",
            )

    async def _guarded(self, step: Awaitable[T]) -> T:
        """A provider step, its refusals as the caller's (403) and its outages as 503."""
        try:
            return await step
        except ProviderRefused as exc:
            raise denied(str(exc)) from None
        except ProviderUnreachable as exc:
            log.warning("external login failed: %s", exc)
            raise Failure(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    async def _exchange(
        self, flow: PendingFlow, code: str, options: dict[str, str]
    ) -> ExternalIdentity:
        ends = self._oauth_endpoints
        if flow.provider == "github":
            return await github.identity(
                ends.github,
                ends.github_api,
                client_id=options["GitHubClientId"],
                client_secret=options.get("GitHubClientSecret", ""),
                code=code,
                redirect_uri=flow.redirect_uri,
                verifier=flow.verifier,
            )
        if flow.provider == "lark":
            return await lark.identity(
                ends.lark,
                client_id=options["LarkClientId"],
                client_secret=options.get("LarkClientSecret", ""),
                code=code,
                redirect_uri=flow.redirect_uri,
                verifier=flow.verifier,
            )
        return await oidc.identity(
            await oidc.discover(options),
            client_id=options["OidcClientId"],
            client_secret=options.get("OidcClientSecret", ""),
            code=code,
            redirect_uri=flow.redirect_uri,
            verifier=flow.verifier,
            nonce=flow.nonce,
        )

    async def _conclude(
        self,
        provider: str,
        identity: ExternalIdentity,
        binding_user: int,
        caller: Caller | None,
        options: dict[str, str],
    ) -> admin_pb2.OAuthFinishResponse:
        column = COLUMNS[provider]
        if binding_user:
            if caller is None or caller.id != binding_user:
                raise denied("this binding was started by another session")
            await self._bind(column, provider, binding_user, identity.subject)
            return admin_pb2.OAuthFinishResponse(bound=True)
        row = await self._pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE {column} = $1", identity.subject
        )
        if row is None:
            if not _on(options, "RegisterEnabled"):
                raise denied("registration is turned off (option RegisterEnabled)")
            row = await self._register(column, provider, identity, options)
        if row["status"] != STATUS_ENABLED:
            raise denied("this user is disabled")
        session_id = await self._sessions.create(row["id"])
        return admin_pb2.OAuthFinishResponse(
            login=admin_pb2.LoginResponse(
                user=records.user_message(row),
                session_id=session_id,
                require_password_change=row["must_change_password"],
            )
        )

    async def _bind(self, column: str, provider: str, user_id: int, subject: str) -> None:
        try:
            await self._pool.execute(
                f"UPDATE users SET {column} = $2, updated_time = $3 WHERE id = $1",
                user_id,
                subject,
                int(time.time()),
            )
        except asyncpg.UniqueViolationError:
            raise Failure(
                grpc.StatusCode.ALREADY_EXISTS,
                f"this {LABELS[provider]} account is bound to another user",
            ) from None

    async def _register(
        self, column: str, provider: str, identity: ExternalIdentity, options: dict[str, str]
    ) -> asyncpg.Record:
        display = (identity.display_name.strip() or f"{LABELS[provider]} User")[:64]
        for _ in range(5):
            # One API names them <provider>_<n>; a random suffix needs no max(id) race.
            username = f"{provider}_{secrets.token_hex(4)}"
            try:
                # One transaction: the user, its invitation code and QuotaForNewUser as a
                # top-up row (the ledger path the mail sign-up uses), or none of them. A raced
                # second login rolls back whole, so the gift is credited exactly once.
                async with self._pool.acquire() as conn, conn.transaction():
                    user_id: int = await conn.fetchval(
                        "INSERT INTO users (username, password_hash, display_name, quota,"
                        f" {column}) VALUES ($1, '', $2, 0, $3) RETURNING id",
                        username,
                        display,
                        identity.subject,
                    )
                    await assign_aff_code(conn, user_id)
                    # No inviter: an external login carries no invitation code. A new id has
                    # no cached balance to forget.
                    await reward_signup(conn, user_id, 0, options)
                    row: asyncpg.Record = await conn.fetchrow(
                        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id
                    )
                return row
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == f"users_{column}":
                    # The same person finishing two logins at once: the other one made it.
                    again = await self._pool.fetchrow(
                        f"SELECT {USER_COLUMNS} FROM users WHERE {column} = $1", identity.subject
                    )
                    if again is not None:
                        return again
        raise Failure(grpc.StatusCode.ABORTED, "could not choose a username; try again")
