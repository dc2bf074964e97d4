"""The management REST API (One API's ``/api/*``) through the gateway, against the session
stack (real auth, billing, Postgres, Redis, NATS): sessions, CSRF, throttling, the default
password, role boundaries, every route, and that no read ever shows a secret."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, ThreadedServer
from unigate_cli.devstack import Stack

ROOT_PASSWORD = "test-root-password"
_names = itertools.count(1)


def refused(r: httpx.Response) -> bool:
    """One API's refusal: HTTP 200, ``success: false`` and a message."""
    body = r.json()
    return r.status_code == 200 and body["success"] is False and bool(body["message"])


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}{secrets.token_hex(3)}"


class Api:
    """One client of the management API: a cookie jar, the session's CSRF token, or a bearer
    access token, and One API's envelope checked on every answer."""

    def __init__(self, stack: Stack, *, ip: str | None = None) -> None:
        headers = {"X-Forwarded-For": ip} if ip else {}
        self.http = httpx.AsyncClient(
            base_url=stack.gateway_url + "/api", timeout=60, headers=headers
        )
        self.csrf = ""
        self.user: dict[str, Any] = {}

    async def login(self, username: str, password: str) -> httpx.Response:
        r = await self.http.post("/user/login", json={"username": username, "password": password})
        if r.status_code == 200 and r.json()["success"]:
            self.csrf = r.json()["data"]["csrf_token"]
            self.user = r.json()["data"]
        return r

    async def raw(self, method: str, path: str, *, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        r = await self.http.request(method, path, headers=headers, **kw)
        if r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            assert isinstance(body.get("success"), bool), body
            # One API's convention: a success is a 200; a refusal too, unless it is 401, 413,
            # 429, an unknown route or method, or a fault of ours.
            assert body["success"] is False or r.status_code == 200, (r.status_code, body)
        return r

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        """``data`` of a successful answer (the whole envelope when ``whole``)."""
        whole = kw.pop("whole", False)
        r = await self.raw(method, path, **kw)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        body = r.json()
        return body if whole else body["data"]

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def apis(stack: Stack) -> AsyncIterator[list[Api]]:
    made: list[Api] = []
    yield made
    for api in made:
        await api.close()


@pytest.fixture
async def root(stack: Stack, apis: list[Api]) -> Api:
    api = Api(stack)
    apis.append(api)
    r = await api.login("root", ROOT_PASSWORD)
    assert r.status_code == 200, r.text
    return api


async def new_user(
    stack: Stack, root: Api, apis: list[Api], *, role: str = "user", quota: int = 0
) -> Api:
    """A user created, promoted and funded through the API, logged in on its own client."""
    name = unique(role)
    password = "pw-" + secrets.token_hex(8)
    created = await root.ok("POST", "/user/", json={"username": name, "password": password})
    if quota:
        await root.ok("PUT", "/user/", json={"id": created["id"], "quota": quota})
    if role == "admin":
        await root.ok("POST", "/user/manage", json={"username": name, "action": "promote"})
    api = Api(stack)
    apis.append(api)
    assert (await api.login(name, password)).status_code == 200
    api.user["password"] = password
    return api


# ---- the API's shape ---------------------------------------------------------------------


async def test_openapi_document_lists_the_routes(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(stack.gateway_url + "/api/openapi.json")
    assert r.status_code == 200
    doc = orjson.loads(r.content)
    assert doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": "/api"}]
    paths = doc["paths"]
    expected = {
        "/user/login": {"post"},
        "/user/logout": {"get"},
        "/user/register": {"post"},
        "/user/reset": {"post"},
        "/user/aff": {"get"},
        "/verification": {"get"},
        "/reset_password": {"get"},
        "/topup": {"post"},
        "/user/self": {"get", "put"},
        "/user/token": {"get"},
        "/user/topup": {"post"},
        "/user/available_models": {"get"},
        "/user/": {"get", "post", "put"},
        "/user/search": {"get"},
        "/user/{user_id}": {"get", "delete"},
        "/user/manage": {"post"},
        "/token/": {"get", "post", "put"},
        "/token/search": {"get"},
        "/token/{token_id}": {"get", "delete"},
        "/channel/": {"get", "post", "put"},
        "/channel/search": {"get"},
        "/channel/{channel_id}": {"get", "delete"},
        "/channel/test": {"get"},
        "/channel/test/{channel_id}": {"get"},
        "/channel/update_balance": {"get"},
        "/channel/update_balance/{channel_id}": {"get"},
        "/channel/disabled": {"delete"},
        "/channel/models": {"get"},
        "/redemption/": {"get", "post", "put"},
        "/redemption/search": {"get"},
        "/redemption/{redemption_id}": {"get", "delete"},
        "/log/": {"get", "delete"},
        "/log/self": {"get"},
        "/log/stat": {"get"},
        "/log/self/stat": {"get"},
        "/log/search": {"get"},
        "/log/self/search": {"get"},
        "/user/dashboard": {"get"},
        "/notice": {"get"},
        "/about": {"get"},
        "/home_page_content": {"get"},
        "/log/export": {"get"},
        "/log/self/export": {"get"},
        "/audit": {"get"},
        "/option/": {"get", "put"},
        "/group/": {"get"},
        "/status": {"get"},
        "/models": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert "TokenBody" in doc["components"]["schemas"]


async def test_anonymous_callers_get_401_except_on_public_routes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=30) as http:
        for method, path in [
            ("GET", "/user/self"),
            ("GET", "/user/"),
            ("GET", "/token/"),
            ("POST", "/token/"),
            ("GET", "/channel/"),
            ("GET", "/redemption/"),
            ("GET", "/log/"),
            ("GET", "/log/self"),
            ("GET", "/log/self/stat"),
            ("GET", "/option/"),
            ("GET", "/user/token"),
            ("GET", "/models"),
        ]:
            r = await http.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["success"] is False
        # A made-up bearer token is no better.
        # (One API answers a wrong access token 200 with success false.)
        r = await http.get("/user/self", headers={"Authorization": "Bearer nope"})
        assert refused(r)
        status = await http.get("/status")
        assert status.status_code == 200
        assert status.json()["data"]["quota_per_unit"] == 500_000


# ---- sessions, CSRF, throttling, the default password -----------------------------------


async def test_login_cookie_is_httponly_strict_and_logout_ends_the_session(
    stack: Stack, apis: list[Api]
) -> None:
    api = Api(stack)
    apis.append(api)
    r = await api.login("root", ROOT_PASSWORD)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert r.headers["x-csrf-token"] == api.csrf
    assert r.json()["data"]["username"] == "root"
    assert (await api.ok("GET", "/user/self"))["role"] == 100
    # A wrong password is refused without saying which half was wrong.
    wrong = await Api(stack).login("root", "not-the-password")
    assert refused(wrong)
    assert (await api.ok("GET", "/user/logout")) is None
    assert (await api.raw("GET", "/user/self")).status_code == 401


async def test_cookie_writes_need_the_csrf_token_but_bearer_writes_do_not(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    user = await new_user(stack, root, apis)
    r = await user.raw("POST", "/token/", csrf=False, json={"name": "no-csrf"})
    assert refused(r) and "CSRF" in r.json()["message"]
    r = await user.raw(
        "POST", "/token/", csrf=False, json={"name": "bad"}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert refused(r)
    await user.ok("POST", "/token/", json={"name": "with-csrf"})
    access_token = await user.ok("GET", "/user/token")
    assert isinstance(access_token, str) and len(access_token) >= 40
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=30) as http:
        bearer = {"Authorization": f"Bearer {access_token}"}
        r = await http.post("/token/", json={"name": "by-bearer"}, headers=bearer)
        assert r.status_code == 200, r.text
        names = {t["name"] for t in (await http.get("/token/", headers=bearer)).json()["data"]}
        assert {"with-csrf", "by-bearer"} <= names and "no-csrf" not in names
        # One API's bare form (no "Bearer") is accepted too.
        bare = await http.get("/user/self", headers={"Authorization": access_token})
        assert bare.json()["success"] is True
        # A new access token replaces the old one.
        await user.ok("GET", "/user/token")
        assert refused(await http.get("/user/self", headers=bearer))


async def test_failed_logins_are_throttled_per_user_and_per_address(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    victim = await new_user(stack, root, apis)
    name, password = victim.user["username"], victim.user["password"]
    attacker = Api(stack, ip="198.51.100.7")
    apis.append(attacker)
    for _ in range(5):
        assert refused(await attacker.login(name, "wrong-password"))
    # Locked for that address: even the right password is not checked now. The owner,
    # elsewhere, still logs in (throttling is per account and address).
    r = await attacker.login(name, password)
    assert r.status_code == 429 and "too many failed logins" in r.json()["message"]
    owner = Api(stack, ip="198.51.100.8")
    apis.append(owner)
    assert (await owner.login(name, password)).status_code == 200

    # Per address: 20 failures on 20 different names lock the address, not the names.
    sprayer = Api(stack, ip="203.0.113.9")
    apis.append(sprayer)
    for i in range(20):
        assert refused(await sprayer.login(unique(f"ghost{i}-"), "x" * 10))
    other = await new_user(stack, root, apis)
    r = await sprayer.login(other.user["username"], other.user["password"])
    assert r.status_code == 429
    elsewhere = Api(stack, ip="203.0.113.10")
    apis.append(elsewhere)
    assert (await elsewhere.login(other.user["username"], other.user["password"])).json()["success"]


async def test_a_root_on_the_default_password_must_change_it_first(
    stack: Stack, pg: asyncpg.Pool, apis: list[Api]
) -> None:
    name = unique("fresh-root")
    user_id = await admin_writes.create_user(pg, username=name, password="123456-default", role=100)
    await pg.execute("UPDATE users SET must_change_password = TRUE WHERE id = $1", user_id)
    api = Api(stack)
    apis.append(api)
    r = await api.login(name, "123456-default")
    assert r.status_code == 200
    assert r.json()["data"]["require_password_change"] is True
    assert "must be changed" in r.json()["message"]
    for method, path in [("GET", "/user/"), ("GET", "/token/"), ("GET", "/option/")]:
        answer = await api.raw(method, path)
        assert refused(answer), (path, answer.text)
        assert "password must be changed" in answer.json()["message"]
    assert (await api.ok("GET", "/user/self"))["must_change_password"] is True
    # Changing needs the current password, and a different new one.
    r = await api.raw("PUT", "/user/self", json={"password": "new-password-1"})
    assert refused(r)
    r = await api.raw(
        "PUT",
        "/user/self",
        json={"password": "123456-default", "original_password": "123456-default"},
    )
    assert refused(r)
    changed = await api.ok(
        "PUT",
        "/user/self",
        json={"password": "new-password-1", "original_password": "123456-default"},
    )
    assert changed["must_change_password"] is False
    assert isinstance(await api.ok("GET", "/user/"), list)
    again = Api(stack)
    apis.append(again)
    assert refused(await again.login(name, "123456-default"))
    assert (await again.login(name, "new-password-1")).json()["data"][
        "require_password_change"
    ] is False


# ---- roles ------------------------------------------------------------------------------


async def test_a_user_cannot_touch_another_users_keys_or_logs(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    alice = await new_user(stack, root, apis)
    bob = await new_user(stack, root, apis)
    token = await alice.ok("POST", "/token/", json={"name": "alice-key"})
    for method, path, body in [
        ("GET", f"/token/{token['id']}", None),
        ("DELETE", f"/token/{token['id']}", None),
        ("PUT", "/token/", {"id": token["id"], "name": "stolen"}),
    ]:
        r = await bob.raw(method, path, json=body)
        assert refused(r), (method, path, r.text)
    r = await bob.raw("GET", "/token/", params={"user_id": alice.user["id"]})
    assert refused(r)
    r = await bob.raw("POST", "/token/", json={"name": "for-alice", "user_id": alice.user["id"]})
    assert refused(r)
    assert (await alice.ok("GET", f"/token/{token['id']}"))["name"] == "alice-key"
    # Logs: only the admin route shows everyone's, and the self route ignores a username.
    assert refused(await bob.raw("GET", "/log/"))
    assert refused(await bob.raw("GET", "/log/stat"))
    assert refused(await bob.raw("GET", "/log/export"))
    assert refused(await bob.raw("DELETE", "/log/", params={"target_timestamp": 5}))
    rows = await bob.ok("GET", "/log/self", params={"username": "root"})
    assert all(row["user_id"] == bob.user["id"] for row in rows)
    # Admin routes are closed to a user.
    for method, path in [
        ("GET", "/user/"),
        ("GET", "/channel/"),
        ("GET", "/channel/models"),
        ("GET", "/redemption/"),
        ("GET", "/group/"),
        ("GET", "/option/"),
    ]:
        assert refused(await bob.raw(method, path)), path


async def test_an_admin_cannot_edit_options_promote_or_act_on_root(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    boss = await new_user(stack, root, apis, role="admin")
    assert boss.user["role"] == 10
    worker = await new_user(stack, root, apis)
    peer = await new_user(stack, root, apis, role="admin")
    assert refused(await boss.raw("GET", "/option/"))
    # The audit is root's: it reads every balance, and each finding names its size.
    assert refused(await boss.raw("GET", "/audit"))
    audit = await root.ok("GET", "/audit")
    assert audit["compared"] > 0
    for drift in audit["drifts"]:
        assert drift["size"] == drift["actual"] - drift["expected"] != 0
    assert refused(await root.raw("GET", "/audit", params={"start": -1}))
    r = await boss.raw("PUT", "/option/", json={"key": "SystemName", "value": "x"})
    assert refused(r)
    for action in ("promote", "demote"):
        r = await boss.raw(
            "POST", "/user/manage", json={"username": worker.user["username"], "action": action}
        )
        assert refused(r), action
    for action in ("disable", "delete", "demote"):
        r = await boss.raw("POST", "/user/manage", json={"username": "root", "action": action})
        assert refused(r), action
    assert refused(await boss.raw("PUT", "/user/", json={"id": 1, "password": "hijack-pass"}))
    assert refused(await boss.raw("DELETE", "/user/1"))
    assert refused(await boss.raw("GET", "/user/1"))
    # Nor on another admin.
    r = await boss.raw(
        "POST", "/user/manage", json={"username": peer.user["username"], "action": "disable"}
    )
    assert refused(r)
    # But on a user below it: yes, and a disabled user's session ends at once.
    r = await boss.ok(
        "POST", "/user/manage", json={"username": worker.user["username"], "action": "disable"}
    )
    assert r["status"] == 2
    assert (await worker.raw("GET", "/user/self")).status_code == 401
    await boss.ok(
        "POST", "/user/manage", json={"username": worker.user["username"], "action": "enable"}
    )
    # Root promotes and demotes; there is no promotion to root.
    r = await root.raw(
        "POST", "/user/manage", json={"username": peer.user["username"], "action": "promote"}
    )
    assert refused(r)
    demoted = await root.ok(
        "POST", "/user/manage", json={"username": peer.user["username"], "action": "demote"}
    )
    assert demoted["role"] == 1
    r = await root.raw("POST", "/user/manage", json={"username": "root", "action": "disable"})
    assert refused(r)


# ---- records ----------------------------------------------------------------------------


async def test_users_crud_search_and_self(stack: Stack, root: Api, apis: list[Api]) -> None:
    name = unique("crud")
    created = await root.ok(
        "POST", "/user/", json={"username": name, "password": "pw-12345678", "group": "default"}
    )
    assert created["username"] == name and created["role"] == 1
    dup = await root.raw("POST", "/user/", json={"username": name, "password": "pw-12345678"})
    assert refused(dup)
    short = await root.raw("POST", "/user/", json={"username": unique("s"), "password": "short"})
    assert refused(short)
    found = await root.ok("GET", "/user/search", params={"keyword": name}, whole=True)
    assert [u["id"] for u in found["data"]] == [created["id"]] and found["total"] == 1
    page = await root.ok("GET", "/user/", params={"p": 0, "size": 2}, whole=True)
    assert len(page["data"]) == 2 and page["total"] >= 2
    updated = await root.ok(
        "PUT", "/user/", json={"id": created["id"], "display_name": "Crud Person", "quota": 1234}
    )
    assert updated["display_name"] == "Crud Person" and updated["quota"] == 1234
    assert (await root.ok("GET", f"/user/{created['id']}"))["quota"] == 1234
    manage_rows = await root.ok("GET", "/log/", params={"type": 3, "username": name})
    assert any("1234" in row["content"] for row in manage_rows)
    me = Api(stack)
    apis.append(me)
    await me.login(name, "pw-12345678")
    assert (await me.ok("PUT", "/user/self", json={"display_name": "Me"}))["display_name"] == "Me"
    await root.ok("DELETE", f"/user/{created['id']}")
    assert refused(await root.raw("GET", f"/user/{created['id']}"))
    assert (await me.raw("GET", "/user/self")).status_code == 401


async def test_tokens_show_the_key_once_and_masked_afterwards(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    user = await new_user(stack, root, apis)
    created = await user.ok(
        "POST",
        "/token/",
        json={"name": "k1", "remain_quota": 1000, "models": "gpt-4o-mini", "subnet": "10.0.0.0/8"},
    )
    key = created["key"]
    assert key.startswith("sk-") and len(key) > 40
    read = await user.ok("GET", f"/token/{created['id']}")
    assert read["key"] != key and read["key"].startswith(key[:7]) and "*" in read["key"]
    assert read["remain_quota"] == 1000 and read["subnet"] == "10.0.0.0/8"
    bad = await user.raw("POST", "/token/", json={"name": "k2", "subnet": "not-a-net"})
    assert refused(bad)
    updated = await user.ok(
        "PUT", "/token/", json={"id": created["id"], "status": 2, "remain_quota": 50}
    )
    assert updated["status"] == 2 and updated["remain_quota"] == 50 and updated["name"] == "k1"
    found = await user.ok("GET", "/token/search", params={"keyword": "k1"})
    assert [t["id"] for t in found] == [created["id"]]
    await user.ok("DELETE", f"/token/{created['id']}")
    assert await user.ok("GET", "/token/") == []


async def wait_for_log(api: Api, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        rows: list[dict[str, Any]] = await api.ok("GET", path, params=params)
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def sim_channel(
    ok: Callable[..., Awaitable[Any]], simulator: ThreadedServer, model: str, **fields: Any
) -> Any:
    """An OpenAI channel on the session's simulator serving ``model`` (as gpt-4o-mini),
    created through ``ok`` (an :meth:`Api.ok`, or a browser session's own)."""
    channel = {
        "type": 1,
        "key": SIM_KEY,
        "base_url": simulator.url,
        "models": model,
        "model_mapping": {model: "gpt-4o-mini"},
    }
    return await ok("POST", "/channel/", json={**channel, **fields})


async def test_a_channel_and_key_made_by_the_api_serve_the_sdk_and_show_in_the_logs(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer
) -> None:
    model = unique("mgmt-gpt-")
    channel = await sim_channel(root.ok, simulator, model, name="via-api")
    assert channel["key"] != SIM_KEY and channel["key_count"] == 1
    user = await new_user(stack, root, apis, quota=5_000_000)
    token = await user.ok("POST", "/token/", json={"name": "sdk-key", "unlimited_quota": True})
    client = openai.AsyncOpenAI(
        api_key=token["key"], base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    answer = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}]
    )
    assert answer.usage is not None and answer.usage.total_tokens > 0

    rows = await wait_for_log(root, "/log/", {"model_name": model})
    assert len(rows) == 1
    row = rows[0]
    assert row["token_name"] == "sdk-key" and row["username"] == user.user["username"]
    assert row["channel"] == channel["id"] and row["type"] == 2
    assert row["prompt_tokens"] == answer.usage.prompt_tokens and row["quota"] > 0
    stat = await root.ok("GET", "/log/stat", params={"model_name": model})
    assert stat["quota"] == row["quota"] and stat["requests"] == 1
    own = await user.ok("GET", "/log/self", params={"model_name": model})
    assert [r["id"] for r in own] == [row["id"]]
    own_stat = await user.ok("GET", "/log/self/stat")
    assert own_stat["quota"] == row["quota"]
    by_token = await root.ok("GET", "/log/", params={"token_name": "sdk-key", "type": 2})
    assert row["id"] in {r["id"] for r in by_token}
    csv = await user.raw("GET", "/log/self/export")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert row["request_id"] in csv.text
    assert (await root.raw("GET", "/log/export", params={"model_name": model})).text.count(
        row["request_id"]
    ) == 1

    # Disabling the channel through the API takes effect at the very next request.
    disabled = await root.ok("PUT", "/channel/", json={"id": channel["id"], "status": 2})
    assert disabled["config_version"] > channel["config_version"]
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "again"}]
        )
    await root.ok("PUT", "/channel/", json={"id": channel["id"], "status": 1})
    await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "and again"}]
    )

    # The channel's test records its response time.
    tested = await root.ok("GET", f"/channel/test/{channel['id']}", whole=True)
    assert tested["success"] is True and tested["time"] > 0
    after = await root.ok("GET", f"/channel/{channel['id']}")
    assert after["test_time"] > 0 and after["response_time"] > 0
    assert model in [m["id"] for m in await root.ok("GET", "/channel/models")]
    assert model in (await user.ok("GET", "/models"))["1"]
    assert model in await user.ok("GET", "/user/available_models")
    found = await root.ok("GET", "/channel/search", params={"keyword": model})
    assert [c["id"] for c in found] == [channel["id"]]
    await root.ok("DELETE", f"/channel/{channel['id']}")
    assert refused(await root.raw("GET", f"/channel/{channel['id']}"))


async def test_channel_list_test_all_and_delete_disabled(
    stack: Stack, root: Api, simulator: ThreadedServer, pg: asyncpg.Pool
) -> None:
    made = []
    for status in (1, 2):
        channel = await root.ok(
            "POST",
            "/channel/",
            json={
                "type": 1,
                "name": unique("bulk"),
                "key": SIM_KEY,
                "base_url": simulator.url,
                "models": "gpt-4o-mini",
                "group": "nobody-uses-this",
                "status": status,
            },
        )
        assert channel["status"] == status
        made.append(channel["id"])
    listed = await root.ok("GET", "/channel/", params={"size": 100}, whole=True)
    assert set(made) <= {c["id"] for c in listed["data"]}
    # The server orders by quota when asked (the console's "top channels" relies on it).
    top = await root.ok("GET", "/channel/", params={"size": 5, "order": "used_quota"})
    expected = await pg.fetch("SELECT id FROM channels ORDER BY used_quota DESC, id DESC LIMIT 5")
    assert [c["id"] for c in top] == [r["id"] for r in expected]
    unknown_order = await root.raw("GET", "/channel/", params={"order": "key_enc"})
    assert refused(unknown_order) and not unknown_order.json()["success"]
    results = {r["id"]: r for r in await root.ok("GET", "/channel/test")}
    assert results[made[0]]["success"] is True
    deleted = await root.ok("DELETE", "/channel/disabled")
    assert deleted >= 1
    assert refused(await root.raw("GET", f"/channel/{made[1]}"))
    await root.ok("DELETE", f"/channel/{made[0]}")
    bad = await root.raw("POST", "/channel/", json={"type": 9999, "key": "k", "models": "m"})
    assert refused(bad)


async def test_redemption_codes_and_topup(stack: Stack, root: Api, apis: list[Api]) -> None:
    codes = await root.ok("POST", "/redemption/", json={"name": "gift", "quota": 777, "count": 2})
    assert len(codes) == 2 and all(len(c) == 32 for c in codes)
    listed = await root.ok("GET", "/redemption/search", params={"keyword": "gift"})
    by_key = {r["key"]: r for r in listed}
    first, second = by_key[codes[0]], by_key[codes[1]]
    assert (await root.ok("GET", f"/redemption/{first['id']}"))["quota"] == 777
    assert (await root.ok("GET", "/redemption/", whole=True))["total"] >= 2
    await root.ok("PUT", "/redemption/", json={"id": second["id"], "status": 2})
    user = await new_user(stack, root, apis)
    assert await user.ok("POST", "/user/topup", json={"key": codes[0]}) == 777
    assert (await user.ok("GET", "/user/self"))["quota"] == 777
    again = await user.raw("POST", "/user/topup", json={"key": codes[0]})
    assert refused(again) and "already been used" in again.json()["message"]
    assert refused(await user.raw("POST", "/user/topup", json={"key": codes[1]}))
    used = await root.raw("PUT", "/redemption/", json={"id": first["id"], "quota": 1})
    assert refused(used)
    await root.ok("DELETE", f"/redemption/{second['id']}")
    assert refused(await root.raw("GET", f"/redemption/{second['id']}"))
    topups = await user.ok("GET", "/log/self", params={"type": 1})
    assert [r["quota"] for r in topups] == [777]


async def test_options_groups_registration_and_status(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    name = unique("newcomer")
    anonymous = Api(stack)
    apis.append(anonymous)
    body = {"username": name, "password": "pw-12345678"}
    assert refused(await anonymous.raw("POST", "/user/register", json=body))
    await root.ok("PUT", "/option/", json={"key": "RegisterEnabled", "value": True})
    await root.ok("PUT", "/option/", json={"key": "GroupRatio", "value": {"default": 1, "vip": 2}})
    bad = await root.raw("PUT", "/option/", json={"key": "ModelRatio", "value": "{nope"})
    assert refused(bad)
    options = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
    assert options["RegisterEnabled"] == "true"
    assert orjson.loads(options["GroupRatio"]) == {"default": 1, "vip": 2}
    assert "vip" in await root.ok("GET", "/group/")
    assert (await anonymous.ok("GET", "/status"))["register_enabled"] is True
    try:
        registered = await anonymous.ok("POST", "/user/register", json=body)
        assert registered["username"] == name and registered["role"] == 1
        assert (await anonymous.login(name, "pw-12345678")).status_code == 200
    finally:
        await root.ok("PUT", "/option/", json={"key": "RegisterEnabled", "value": False})


async def test_delete_logs_forgets_old_rows_only(root: Api, pg: asyncpg.Pool) -> None:
    old = await pg.fetchval(
        "INSERT INTO logs (type, created_at, content) VALUES (4, 1000, 'ancient') RETURNING id"
    )
    recent = await pg.fetchval(
        "INSERT INTO logs (type, created_at, content) VALUES (4, $1, 'recent') RETURNING id",
        int(time.time()),
    )
    assert await root.ok("DELETE", "/log/", params={"target_timestamp": 2000}) >= 1
    left = {
        r["id"] for r in await pg.fetch("SELECT id FROM logs WHERE id = ANY($1)", [old, recent])
    }
    assert left == {recent}
    assert refused(await root.raw("DELETE", "/log/"))


async def test_no_read_ever_shows_a_secret(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer, pg: asyncpg.Pool
) -> None:
    channel_key = "sk-secret-" + secrets.token_hex(20)
    channel = await root.ok(
        "POST",
        "/channel/",
        json={
            "type": 1,
            "name": "secretive",
            "key": channel_key + "\n" + channel_key + "-2",
            "base_url": simulator.url,
            "models": "gpt-4o-mini",
            "group": "nobody-uses-this",
        },
    )
    user = await new_user(stack, root, apis)
    token = await user.ok("POST", "/token/", json={"name": "secret-key"})
    access_token = await user.ok("GET", "/user/token")
    await root.ok("PUT", "/option/", json={"key": "SMTPToken", "value": "smtp-" + channel_key})
    hashes = [r["password_hash"] for r in await pg.fetch("SELECT password_hash FROM users")]
    secrets_ = [channel_key, token["key"], access_token, "$argon2", ROOT_PASSWORD, *hashes]
    reads = [
        (root, "/channel/"),
        (root, f"/channel/{channel['id']}"),
        (root, "/channel/search?keyword=secretive"),
        (root, "/user/"),
        (root, f"/user/{user.user['id']}"),
        (root, "/user/self"),
        (root, "/option/"),
        (user, "/token/"),
        (user, f"/token/{token['id']}"),
        (user, "/user/self"),
        (root, "/log/"),
    ]
    for api, path in reads:
        r = await api.raw("GET", path)
        assert r.status_code == 200, (path, r.text)
        text = r.text
        for secret in secrets_:
            assert secret not in text, (path, secret[:12])
    await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_webhook_credentials_are_masked_and_kept_when_saved_back(
    root: Api, pg: asyncpg.Pool
) -> None:
    """NotificationWebhooks' URLs (a Slack or DingTalk URL is the credential) and signing
    secrets never come back, even to root; the masked list PUT back (as the console's
    settings page does) keeps the stored values, and a mask that stands for nothing stored
    is the client's 400."""
    token, secret = "dt" + secrets.token_hex(16), "SEC" + secrets.token_hex(16)
    # Port 9 (discard) on loopback: an alert raised meanwhile fails at once, harmlessly.
    hooks = [
        {"type": "dingtalk", "url": f"http://127.0.0.1:9/robot/send?access_token={token}"},
        {"type": "generic", "url": "http://127.0.0.1:9/alerts/ops-hook-path", "secret": secret},
    ]
    stored = orjson.dumps(hooks).decode()
    before = await pg.fetchval("SELECT value FROM options WHERE key = 'NotificationWebhooks'")
    try:
        await root.ok("PUT", "/option/", json={"key": "NotificationWebhooks", "value": hooks})
        r = await root.raw("GET", "/option/")
        assert r.status_code == 200 and token not in r.text and secret not in r.text
        shown = {o["key"]: o["value"] for o in r.json()["data"]}["NotificationWebhooks"]
        assert [h.get("secret") for h in orjson.loads(shown)] == [None, "***"]
        await root.ok("PUT", "/option/", json={"key": "NotificationWebhooks", "value": shown})
        saved = "SELECT value FROM options WHERE key = 'NotificationWebhooks'"
        assert orjson.loads(await pg.fetchval(saved)) == orjson.loads(stored)
        forged = [{"type": "generic", "url": "http://127.0.0.1:9/x", "secret": "***"}]
        r = await root.raw("PUT", "/option/", json={"key": "NotificationWebhooks", "value": forged})
        assert refused(r) and "masked" in r.json()["message"]
        assert orjson.loads(await pg.fetchval(saved)) == orjson.loads(stored)
    finally:
        # Through the API, so every auth reloads it (none had webhooks: an empty list).
        restore = {"key": "NotificationWebhooks", "value": before or ""}
        await root.ok("PUT", "/option/", json=restore)


async def test_unknown_routes_and_bad_bodies_keep_the_envelope(root: Api) -> None:
    r = await root.raw("GET", "/no/such/route")
    assert r.status_code == 404 and r.json()["success"] is False
    r = await root.raw(
        "POST", "/token/", content=b"not json", headers={"content-type": "application/json"}
    )
    assert refused(r) and r.json()["success"] is False
    r = await root.raw("GET", "/user/not-a-number")
    assert refused(r)
