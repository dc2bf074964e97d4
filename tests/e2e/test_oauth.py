"""External logins through the real stack and the identity-provider simulators: GitHub,
Lark, OIDC and One API's WeChat server; login of a new user (registration open) or a refusal
(closed), binding from a session then logging in with it, unbinding, and every forged or
replayed step refused with One API's envelope (200, success false), with no account made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests import admin_writes
from tests.e2e.oauth_support import RATE_LIMIT, Providers, callback_params, providers
from unigate_sim.identity.wechat import give_code

__all__ = ["providers"]


@pytest.fixture
async def options(pg: asyncpg.Pool, providers: Providers) -> AsyncIterator[dict[str, str]]:
    values = providers.options() | {"RegisterEnabled": "true"}
    await set_options(pg, values)
    yield values
    await pg.execute("DELETE FROM options WHERE key = ANY($1::text[])", list(values))


async def set_options(pg: asyncpg.Pool, values: dict[str, str]) -> None:
    await pg.executemany(
        "INSERT INTO options (key, value) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        list(values.items()),
    )


def person_at(providers: Providers, provider: str, person: dict[str, Any]) -> None:
    getattr(providers, provider).server.config.app.state.person = person


async def authorize(http: httpx.AsyncClient, providers: Providers, provider: str) -> dict[str, str]:
    """Open a flow and let the provider send the browser back: the callback's query."""
    opened = await http.get("/api/oauth/state", params={"provider": provider})
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert body["success"] and body["data"]
    at_provider = await http.get(body["url"])  # another origin: the cookie stays ours
    assert at_provider.status_code == 302, at_provider.text
    location = at_provider.headers["location"]
    assert location.startswith(f"{providers.url}/oauth/{provider}?")
    params = callback_params(location)
    assert params["state"] == body["data"]
    return params


async def finish(http: httpx.AsyncClient, provider: str, params: dict[str, str]) -> httpx.Response:
    return await http.get(f"/api/oauth/{provider}", params=params)


def refused(response: httpx.Response, status: int, words: str) -> None:
    """One API's convention: a refusal is 200 with success false; 401 and 429 keep theirs."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    assert words in body["message"], body["message"]


async def users_with(pg: asyncpg.Pool, column: str, subject: str) -> list[int]:
    rows = await pg.fetch(f"SELECT id FROM users WHERE {column} = $1", subject)
    return [r["id"] for r in rows]


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


async def test_status_reports_the_enabled_logins(
    providers: Providers, options: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=providers.url) as http:
        status = (await http.get("/api/status")).json()["data"]
    assert (
        status["github_oauth"] is True and status["github_client_id"] == options["GitHubClientId"]
    )
    assert status["lark_client_id"] == options["LarkClientId"]
    assert status["oidc"] is True and status["oidc_client_id"] == options["OidcClientId"]
    assert status["wechat_login"] is True
    assert status["wechat_qrcode"] == options["WeChatAccountQRCodeImageURL"]
    assert "GitHubClientSecret" not in str(status) and options["GitHubClientSecret"] not in str(
        status
    )


@pytest.mark.parametrize("provider", ["github", "lark", "oidc"])
async def test_a_new_person_logs_in_when_registration_is_open(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool, provider: str
) -> None:
    subject = unique(provider)
    person = {
        "github": {"id": abs(hash(subject)) % 10**9, "login": subject, "name": "Ada GitHub"},
        "lark": {"open_id": subject, "union_id": "on_x", "name": "Ada Lark"},
        "oidc": {"sub": subject, "name": "Ada OIDC", "email": "ada@example.com"},
    }[provider]
    person_at(providers, provider, person)
    stored = str(person.get("id", subject))
    async with httpx.AsyncClient(base_url=providers.url) as http:
        answer = await finish(http, provider, await authorize(http, providers, provider))
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data[f"{provider}_id"] == stored and data["username"].startswith(provider + "_")
        me = (await http.get("/api/user/self")).json()["data"]
    assert me["id"] == data["id"] and me["display_name"] == person["name"]
    assert await users_with(pg, f"{provider}_id", stored) == [me["id"]]
    # The same person again: the same account, no second one.
    async with httpx.AsyncClient(base_url=providers.url) as http:
        again = await finish(http, provider, await authorize(http, providers, provider))
    assert again.json()["data"]["id"] == me["id"]


async def test_a_new_external_user_gets_the_sign_up_gift_in_the_ledger_once(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    await set_options(pg, {"QuotaForNewUser": "1234"})
    try:
        subject = unique("gift")
        person_at(providers, "oidc", {"sub": subject, "name": "Gifted"})
        # Two browsers finish a login for the same new person at once: one account, one gift.
        async with (
            httpx.AsyncClient(base_url=providers.url) as one,
            httpx.AsyncClient(base_url=providers.url) as two,
        ):
            flows = [
                await authorize(one, providers, "oidc"),
                await authorize(two, providers, "oidc"),
            ]
            answers = await asyncio.gather(
                finish(one, "oidc", flows[0]), finish(two, "oidc", flows[1])
            )
        for answer in answers:
            assert answer.status_code == 200 and answer.json()["success"] is True, answer.text
        [user_id] = await users_with(pg, "oidc_id", subject)
        rows = await pg.fetch("SELECT quota FROM logs WHERE type = 1 AND user_id = $1", user_id)
        assert [r["quota"] for r in rows] == [1234]
        user = await pg.fetchrow("SELECT quota, aff_code FROM users WHERE id = $1", user_id)
        assert user["quota"] == 1234 and len(user["aff_code"]) == 8
    finally:
        await pg.execute("DELETE FROM options WHERE key = 'QuotaForNewUser'")


@pytest.mark.parametrize("provider", ["github", "oidc"])
async def test_registration_closed_refuses_an_unknown_identity(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool, provider: str
) -> None:
    await set_options(pg, {"RegisterEnabled": "false"})
    subject = unique("closed")
    person_at(
        providers,
        provider,
        {"id": 7_000_000 + int(time.time()) % 10**6, "login": subject}
        if provider == "github"
        else {"sub": subject},
    )
    users_before = await pg.fetchval("SELECT count(*) FROM users")
    async with httpx.AsyncClient(base_url=providers.url) as http:
        refused(
            await finish(http, provider, await authorize(http, providers, provider)),
            200,
            "registration is turned off",
        )
    assert await pg.fetchval("SELECT count(*) FROM users") == users_before


async def test_bind_then_log_in_then_unbind(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    name = unique("binder").replace("-", "_")
    user_id = await admin_writes.create_user(pg, username=name, password="binder-password")
    gh_id = 8_000_000 + int(time.time()) % 10**6
    person_at(providers, "github", {"id": gh_id, "login": name, "name": "Binder"})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        login = await http.post(
            "/api/user/login", json={"username": name, "password": "binder-password"}
        )
        csrf = login.json()["data"]["csrf_token"]
        bound = await finish(http, "github", await authorize(http, providers, "github"))
        assert bound.status_code == 200 and bound.json()["message"] == "bind", bound.text
        me = (await http.get("/api/user/self")).json()["data"]
        assert me["id"] == user_id and me["github_id"] == str(gh_id)
    # Logged out (a new browser): GitHub logs in as that user.
    async with httpx.AsyncClient(base_url=providers.url) as http:
        answer = await finish(http, "github", await authorize(http, providers, "github"))
        assert answer.json()["data"]["id"] == user_id
    # Another user cannot bind the same GitHub account.
    other = unique("other").replace("-", "_")
    await admin_writes.create_user(pg, username=other, password="other-password")
    async with httpx.AsyncClient(base_url=providers.url) as http:
        await http.post("/api/user/login", json={"username": other, "password": "other-password"})
        refused(
            await finish(http, "github", await authorize(http, providers, "github")),
            200,
            "bound to another user",
        )
    # Unbinding (CSRF-checked) frees it; the next GitHub login is a new account.
    async with httpx.AsyncClient(base_url=providers.url) as http:
        login = await http.post(
            "/api/user/login", json={"username": name, "password": "binder-password"}
        )
        csrf = login.json()["data"]["csrf_token"]
        refused(await http.post("/api/oauth/github/unbind"), 200, "X-CSRF-Token")
        unbound = await http.post("/api/oauth/github/unbind", headers={"X-CSRF-Token": csrf})
        assert unbound.status_code == 200 and unbound.json()["data"]["github_id"] == ""
    assert await users_with(pg, "github_id", str(gh_id)) == []
    async with httpx.AsyncClient(base_url=providers.url) as http:
        fresh = await finish(http, "github", await authorize(http, providers, "github"))
        assert fresh.json()["data"]["id"] != user_id


async def test_an_account_without_password_keeps_its_last_login(
    providers: Providers, options: dict[str, str]
) -> None:
    person_at(providers, "oidc", {"sub": unique("only")})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        login = await finish(http, "oidc", await authorize(http, providers, "oidc"))
        data = login.json()["data"]
        assert data["has_password"] is False
        csrf = {"X-CSRF-Token": data["csrf_token"]}
        refused(await http.post("/api/oauth/oidc/unbind", headers=csrf), 200, "no password")
        # Its owner sets a password (there is no current one to give); then it may unbind.
        changed = await http.put(
            "/api/user/self", json={"password": "now-a-password"}, headers=csrf
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["data"]["has_password"] is True
        unbound = await http.post("/api/oauth/oidc/unbind", headers=csrf)
        assert unbound.status_code == 200 and unbound.json()["data"]["oidc_id"] == ""
    async with httpx.AsyncClient(base_url=providers.url) as http:
        again = await http.post(
            "/api/user/login",
            json={"username": data["username"], "password": "now-a-password"},
        )
        assert again.status_code == 200 and again.json()["data"]["id"] == data["id"]


async def test_new_flows_and_wechat_tries_are_limited_per_address(
    providers: Providers, options: dict[str, str]
) -> None:
    # The gateway trusts 127.0.0.1 as a proxy: this test is its own client address.
    headers = {"X-Forwarded-For": "203.0.113.77"}
    async with httpx.AsyncClient(base_url=providers.url, headers=headers) as http:
        for _ in range(RATE_LIMIT):
            opened = await http.get("/api/oauth/state", params={"provider": "github"})
            assert opened.status_code == 200, opened.text
        refused(
            await http.get("/api/oauth/state", params={"provider": "github"}),
            429,
            "too many external login attempts",
        )
        refused(await http.get("/api/oauth/wechat", params={"code": "123456"}), 429, "too many")
    # Another address is not held up.
    async with httpx.AsyncClient(base_url=providers.url) as http:
        assert (await http.get("/api/oauth/state", params={"provider": "github"})).is_success


async def test_state_must_be_this_browsers_and_used_once(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    subject = unique("state")
    person_at(providers, "oidc", {"sub": subject})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        params = await authorize(http, providers, "oidc")
        refused(await finish(http, "oidc", {**params, "state": "forged"}), 200, "state")
    # The cookie's state was dropped: even the right state now fails.
    async with httpx.AsyncClient(base_url=providers.url) as http:
        params = await authorize(http, providers, "oidc")
        async with httpx.AsyncClient(base_url=providers.url) as victim:
            # Another browser (no such state in its cookie) cannot finish this flow.
            refused(await finish(victim, "oidc", params), 200, "state")
        refused(await finish(http, "oidc", {**params, "state": ""}), 200, "state")
    assert await users_with(pg, "oidc_id", subject) == []


async def test_a_reused_code_and_a_swapped_verifier_are_refused(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    gh_id = 9_000_000 + int(time.time()) % 10**6
    person_at(providers, "github", {"id": gh_id, "login": "reuse"})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        first = await authorize(http, providers, "github")
        assert (await finish(http, "github", first)).status_code == 200
        # A new flow (its own state and verifier) replaying the used code: GitHub refuses.
        second = await authorize(http, providers, "github")
        refused(
            await finish(http, "github", {**second, "code": first["code"]}),
            200,
            "bad_verification_code",
        )
    # A code obtained for one flow, injected into another: the verifier does not match.
    subject = unique("inject")
    person_at(providers, "oidc", {"sub": subject})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        stolen = await authorize(http, providers, "oidc")
        mine = await authorize(http, providers, "oidc")
        refused(await finish(http, "oidc", {**mine, "code": stolen["code"]}), 200, "invalid_grant")
    assert await users_with(pg, "oidc_id", subject) == []


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"sign_with": "other-key"}, "signature"),
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"nonce": "replayed-nonce"}, "nonce"),
        ({"exp": 1_000_000_000}, "expired"),
    ],
)
async def test_forged_id_tokens_are_refused(
    providers: Providers,
    options: dict[str, str],
    pg: asyncpg.Pool,
    fault: dict[str, Any],
    words: str,
) -> None:
    subject = unique("forged")
    person_at(providers, "oidc", {"sub": subject})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        params = await authorize(http, providers, "oidc")
        providers.oidc.server.config.app.state.id_token_faults = dict(fault)
        answer = await finish(http, "oidc", params)
    refused(answer, 200, "ID token")
    assert words in answer.json()["message"].lower() or words in answer.json()["message"]
    assert await users_with(pg, "oidc_id", subject) == []


async def test_an_expired_code_is_refused(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    grants = providers.lark.server.config.app.state.grants
    subject = unique("late")
    person_at(providers, "lark", {"open_id": subject, "name": "Late"})
    grants.code_ttl = -1  # every code is already too old
    try:
        async with httpx.AsyncClient(base_url=providers.url) as http:
            refused(
                await finish(http, "lark", await authorize(http, providers, "lark")),
                200,
                "invalid_grant",
            )
    finally:
        grants.code_ttl = 300
    assert await users_with(pg, "lark_id", subject) == []


async def test_wechat_login_bind_and_refusals(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    sim = providers.wechat.server.config.app
    openid = unique("wx")
    async with httpx.AsyncClient(base_url=providers.url) as http:
        code = give_code(sim, openid)
        answer = await http.get("/api/oauth/wechat", params={"code": code})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["wechat_id"] == openid
        # A code is good once.
        refused(await http.get("/api/oauth/wechat", params={"code": code}), 200, "wrong or expired")
    # Binding needs a login; then the openid names that user.
    name = unique("wxbind").replace("-", "_")
    user_id = await admin_writes.create_user(pg, username=name, password="wechat-password")
    other = unique("wx2")
    async with httpx.AsyncClient(base_url=providers.url) as http:
        refused(
            await http.get("/api/oauth/wechat/bind", params={"code": give_code(sim, other)}),
            401,
            "not logged in",
        )
        await http.post("/api/user/login", json={"username": name, "password": "wechat-password"})
        bound = await http.get("/api/oauth/wechat/bind", params={"code": give_code(sim, other)})
        assert bound.json()["message"] == "bind", bound.text
    assert await users_with(pg, "wechat_id", other) == [user_id]
    # A wrong server token: the server refuses, the person gets a clear refusal, not a 500.
    await set_options(pg, {"WeChatServerToken": "wrong"})
    async with httpx.AsyncClient(base_url=providers.url) as http:
        refused(
            await http.get("/api/oauth/wechat", params={"code": give_code(sim, openid)}),
            200,
            "WeChat server refused",
        )


async def test_turned_off_and_malformed_requests_are_refused(
    providers: Providers, options: dict[str, str], pg: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=providers.url) as http:
        refused(await http.get("/api/oauth/state", params={"provider": "myspace"}), 200, "provider")
        refused(await http.get("/api/oauth/github"), 200, "code")
        refused(await http.get("/api/oauth/github", params={"code": "x" * 600}), 200, "code")
        await set_options(pg, {"GitHubOAuthEnabled": "false"})
        refused(await http.get("/api/oauth/state", params={"provider": "github"}), 200, "off")
        await set_options(pg, {"OidcClientSecret": "wrong-secret"})
        person_at(providers, "oidc", {"sub": unique("secret")})
        refused(
            await finish(http, "oidc", await authorize(http, providers, "oidc")),
            200,
            "invalid_client",
        )
