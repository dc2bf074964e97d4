"""One API's own clients and route table against the management API (issue 18):

- ``one-api-cli`` (PyPI), One API's third-party CLI/SDK, drives channels and users through its
  own classes, and API keys through its HTTP layer (it has no key class): list, create,
  update (a GET then a PUT of the record as read, masked key included: the stored key must
  survive), delete. Every answer it reads must be a 2xx carrying ``success``: it calls
  ``raise_for_status()`` and then reads the envelope.
- Every route of One API's ``router/api.go`` (less the account routes another part of the
  work serves) with One API's status conventions: 401 for a caller with no credentials on a
  guarded route, HTTP 200 with ``success: false`` for every other refusal, the envelope on
  every answer.
- The routes One API declares in ``router/relay.go`` and unigate does not serve: 501; and
  its channel proxy ``/v1/oneapi/proxy/:channel/*``, for administrators' keys only.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import one_api_cli
import openai
import orjson
import pytest

from tests.e2e.conftest import SIM_KEY, ThreadedServer
from tests.e2e.test_management_api import (
    Api,
    apis,
    new_user,
    refused,
    root,
    sim_channel,
    unique,
    wait_for_log,
)
from unigate_cli.devstack import Stack
from unigate_gateway.not_implemented import NOT_IMPLEMENTED

__all__ = ["apis", "root"]  # fixtures


def _chat(stack: Stack, key: str, model: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(
        api_key=key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "still working?"}]
    )


async def test_one_api_cli_drives_channels_users_and_keys(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer
) -> None:
    admin = await new_user(stack, root, apis, role="admin", quota=5_000_000)
    access_token = await admin.ok("GET", "/user/token")
    cli = one_api_cli.OneAPI(one_api_url=stack.gateway_url, access_token=access_token)
    model = unique("cli-gpt-")

    def drive() -> None:
        assert cli.is_valid()

        # ---- channels: create, list, update keeping the key, delete ----
        made = cli.create_channel(
            name="cli-channel",
            key=SIM_KEY,
            base_url=simulator.url,
            models=model,
            model_mapping=orjson.dumps({model: "gpt-4o-mini"}).decode(),
        )
        assert made, "create_channel failed"
        assert made.name == "cli-channel" and made.key != SIM_KEY  # masked on every read
        listed = {c.id for c in cli.get_channels()}  # every page, until an empty one
        assert made.id in listed
        channel = one_api_cli.Channel(made.id, auth=cli)
        # one-api-cli PUTs back the record it read: the masked key among the fields.
        assert channel.update(name="cli-renamed", priority=3)
        assert one_api_cli.Channel(made.id, auth=cli).name == "cli-renamed"

        # ---- API keys, through one-api-cli's HTTP layer ----
        keys_url = f"{stack.gateway_url}/api/token/"
        created = cli._make_request(
            "post", keys_url, json={"name": "cli-key", "remain_quota": 0, "unlimited_quota": True}
        )
        assert created["success"], created
        key_id, full_key = created["data"]["id"], created["data"]["key"]
        # The channel's stored key survived the update: the provider accepts it.
        assert _chat(stack, full_key, model).usage is not None
        read = cli._make_request("get", f"{keys_url}{key_id}")
        assert read["success"] and read["data"]["key"] != full_key
        updated = cli._make_request("put", keys_url, json={**read["data"], "name": "cli-key-2"})
        assert updated["success"] and updated["data"]["name"] == "cli-key-2", updated
        # The key itself is unchanged by an update that sent its masked form back.
        assert _chat(stack, full_key, model).usage is not None
        page = cli._make_request("get", keys_url, params={"p": 0})
        assert key_id in {k["id"] for k in page["data"]}
        assert cli._make_request("delete", f"{keys_url}{key_id}")["success"]
        gone = cli._make_request("get", f"{keys_url}{key_id}")
        assert gone["success"] is False and gone["message"]

        # ---- users: create, list, update, delete ----
        name = unique("cliuser")
        user = cli.create_user(name, "CLI User", "pw-" + secrets.token_hex(6), quota=1234)
        assert user is not None and user.username == name and user.quota == 1234
        assert name in {u.username for u in cli.get_users()}
        assert user.update(display_name="Renamed")
        assert one_api_cli.User(user.id, auth=cli).display_name == "Renamed"
        assert cli.delete_user(name)
        refused_answer = cli._make_request("get", f"{cli.user_url}/{user.id}")
        assert refused_answer["success"] is False  # a 200 the CLI can read, not an exception

        # ---- and the channel goes ----
        assert channel.delete(confim=False)
        assert made.id not in {c.id for c in cli.get_channels()}

    await asyncio.to_thread(drive)


async def test_a_masked_key_that_is_not_the_channels_is_refused(
    root: Api, simulator: ThreadedServer
) -> None:
    channel = await root.ok(
        "POST",
        "/channel/",
        json={"type": 1, "key": SIM_KEY, "base_url": simulator.url, "models": unique("mk-")},
    )
    r = await root.raw("PUT", "/channel/", json={"id": channel["id"], "key": "sk-ab***wxyz"})
    assert refused(r) and "masked" in r.json()["message"]
    # The empty key keeps the stored one too (One API's console sends "" when unchanged).
    kept = await root.ok("PUT", "/channel/", json={"id": channel["id"], "key": ""})
    assert kept["key"] == channel["key"]
    await root.ok("DELETE", f"/channel/{channel['id']}")


# ---- One API's router/api.go, route by route -------------------------------------------

PUBLIC, USER, ADMIN, ROOT = "public", "user", "admin", "root"
NO_ID = 2_000_000_000
# (method, path, the guard One API puts on it). The account routes (/verification,
# /reset_password, /user/reset, /oauth/*, /user/aff, admin POST /topup) are served by the
# accounts part of issue 18 and walked by its tests.
ONE_API_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/status", PUBLIC),
    ("GET", "/models", USER),
    ("GET", "/notice", PUBLIC),
    ("GET", "/about", PUBLIC),
    ("GET", "/home_page_content", PUBLIC),
    ("POST", "/user/register", PUBLIC),
    ("POST", "/user/login", PUBLIC),
    ("GET", "/user/logout", PUBLIC),
    ("GET", "/user/dashboard", USER),
    ("GET", "/user/self", USER),
    ("PUT", "/user/self", USER),
    ("GET", "/user/available_models", USER),
    ("POST", "/user/topup", USER),
    ("GET", "/user/", ADMIN),
    ("GET", "/user/search", ADMIN),
    ("GET", f"/user/{NO_ID}", ADMIN),
    ("POST", "/user/", ADMIN),
    ("POST", "/user/manage", ADMIN),
    ("PUT", "/user/", ADMIN),
    ("DELETE", f"/user/{NO_ID}", ADMIN),
    ("GET", "/option/", ROOT),
    ("PUT", "/option/", ROOT),
    ("GET", "/channel/", ADMIN),
    ("GET", "/channel/search", ADMIN),
    ("GET", "/channel/models", ADMIN),
    ("GET", f"/channel/{NO_ID}", ADMIN),
    ("GET", f"/channel/test/{NO_ID}", ADMIN),
    ("GET", f"/channel/update_balance/{NO_ID}", ADMIN),
    ("POST", "/channel/", ADMIN),
    ("PUT", "/channel/", ADMIN),
    ("DELETE", f"/channel/{NO_ID}", ADMIN),
    ("GET", "/token/", USER),
    ("GET", "/token/search", USER),
    ("GET", f"/token/{NO_ID}", USER),
    ("POST", "/token/", USER),
    ("PUT", "/token/", USER),
    ("DELETE", f"/token/{NO_ID}", USER),
    ("GET", "/redemption/", ADMIN),
    ("GET", "/redemption/search", ADMIN),
    ("GET", f"/redemption/{NO_ID}", ADMIN),
    ("POST", "/redemption/", ADMIN),
    ("PUT", "/redemption/", ADMIN),
    ("DELETE", f"/redemption/{NO_ID}", ADMIN),
    ("GET", "/log/", ADMIN),
    ("DELETE", "/log/", ADMIN),
    ("GET", "/log/stat", ADMIN),
    ("GET", "/log/self/stat", USER),
    ("GET", "/log/search", ADMIN),
    ("GET", "/log/self", USER),
    ("GET", "/log/self/search", USER),
    ("GET", "/group/", ADMIN),
]
# Routes whose GET may change the world (a new access token, tests of every channel, every
# balance read): walked for their guards only.
WALKED_FOR_GUARDS_ONLY = [
    ("GET", "/user/token"),
    ("GET", "/channel/test"),
    ("GET", "/channel/update_balance"),
    ("DELETE", "/channel/disabled"),
]
RANK = {PUBLIC: 0, USER: 1, ADMIN: 10, ROOT: 100}


def _envelope(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), r.text
    assert isinstance(body.get("message"), str), r.text
    return body


async def test_every_one_api_route_follows_one_apis_status_conventions(
    stack: Stack, root: Api, apis: list[Api]
) -> None:
    user = await new_user(stack, root, apis)
    admin = await new_user(stack, root, apis, role="admin")
    callers = {USER: user, ADMIN: admin, ROOT: root}
    guards = ONE_API_ROUTES + [
        (m, p, USER if p == "/user/token" else ADMIN) for m, p in WALKED_FOR_GUARDS_ONLY
    ]
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=60) as anonymous:
        for method, path, guard in guards:
            r = await anonymous.request(
                method, path, json={} if method in ("POST", "PUT") else None
            )
            body = _envelope(r)
            if guard == PUBLIC:
                # Served to anyone: a success, or (a login or registration without its
                # fields) One API's refusal at 200.
                assert r.status_code == 200, (method, path, r.text)
            else:
                # One API's 401: no session and no access token.
                assert r.status_code == 401 and body["success"] is False, (method, path)
    for method, path, guard in ONE_API_ROUTES:
        if guard == PUBLIC:
            continue
        for role, api in callers.items():
            if (method, path) == ("DELETE", "/log/") and RANK[role] >= RANK[guard]:
                continue  # would forget the session's rows; walked below with a harmless cutoff
            r = await api.raw(method, path, json={} if method in ("POST", "PUT") else None)
            body = _envelope(r)
            assert r.status_code == 200, (role, method, path, r.status_code, r.text)
            if RANK[role] < RANK[guard]:
                assert body["success"] is False, (role, method, path, r.text)
            elif str(NO_ID) in path:  # an unknown record: a refusal at 200
                assert body["success"] is False and body["message"], (role, method, path)
            elif method == "GET":
                assert body["success"] is True, (role, method, path, r.text)
    for method, path in WALKED_FOR_GUARDS_ONLY:
        r = await user.raw(method, path)
        if path != "/user/token":
            assert refused(r), (method, path)
    r = await root.raw("DELETE", "/log/", params={"target_timestamp": 1})
    assert r.status_code == 200 and _envelope(r)["success"] is True
    # Unknown routes and methods keep their status, in the envelope.
    r = await root.raw("GET", "/no/such/route")
    assert r.status_code == 404 and _envelope(r)["success"] is False
    r = await root.raw("PATCH", "/option/")
    assert r.status_code == 405 and _envelope(r)["success"] is False


async def test_notice_about_home_page_and_site_options(stack: Stack, root: Api) -> None:
    options = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
    # Every option is listed with its default, the built-in prices among them.
    for key in (
        "Notice",
        "About",
        "HomePageContent",
        "Logo",
        "Footer",
        "SystemName",
        "ChatLink",
        "RegisterEnabled",
        "QuotaForNewUser",
        "RetryTimes",
        "GroupRatio",
        "ModelRatio",
        "CompletionRatio",
        "CacheRatio",
        "CreateCacheRatio",
        "AudioRatio",
        "UnitPrice",
    ):
        assert key in options, key
    model_ratio = orjson.loads(options["ModelRatio"])
    assert model_ratio["gpt-4o"] == pytest.approx(1.25)
    assert orjson.loads(options["CompletionRatio"])["gpt-4o"] == pytest.approx(4)
    assert not [k for k in options if k.lower().endswith(("secret", "token", "password", "key"))]
    texts = {
        "Notice": ("/notice", "Maintenance at **noon** " + secrets.token_hex(3)),
        "About": ("/about", "<p>About us</p>"),
        "HomePageContent": ("/home_page_content", "https://example.com/home"),
        "Logo": (None, "https://example.com/logo.png"),
        "Footer": (None, "<a href='/'>footer</a>"),
    }
    try:
        for key, (_, value) in texts.items():
            await root.ok("PUT", "/option/", json={"key": key, "value": value})
        async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=60) as anyone:
            for key, (path, value) in texts.items():
                if path:
                    r = await anyone.get(path)
                    assert r.status_code == 200 and r.json() == {
                        "success": True,
                        "message": "",
                        "data": value,
                    }, (key, r.text)
            status = (await anyone.get("/status")).json()["data"]
            assert status["logo"] == texts["Logo"][1]
            assert status["footer_html"] == texts["Footer"][1]
            assert "notice" not in status and "home_page_content" not in status
        listed = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
        assert listed["Notice"] == texts["Notice"][1]
    finally:
        for key in texts:
            await root.ok("PUT", "/option/", json={"key": key, "value": options[key]})


async def test_dashboard_and_log_search(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer
) -> None:
    model = unique("dash-gpt-")
    channel = await sim_channel(root.ok, simulator, model)
    user = await new_user(stack, root, apis, quota=5_000_000)
    other = await new_user(stack, root, apis, quota=5_000_000)
    token = await user.ok("POST", "/token/", json={"name": "dash", "unlimited_quota": True})
    client = openai.AsyncOpenAI(
        api_key=token["key"], base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    request_id = raw.headers["x-request-id"]
    (row,) = await wait_for_log(root, "/log/", {"model_name": model})

    dashboard = await user.ok("GET", "/user/dashboard")
    mine = [d for d in dashboard if d["ModelName"] == model]
    assert len(mine) == 1 and mine[0]["RequestCount"] == 1
    assert mine[0]["Quota"] == row["quota"] and mine[0]["PromptTokens"] == row["prompt_tokens"]
    assert not [d for d in await other.ok("GET", "/user/dashboard") if d["ModelName"] == model]

    found = await root.ok("GET", "/log/search", params={"keyword": request_id}, whole=True)
    assert [r["id"] for r in found["data"]] == [row["id"]] and found["total"] == 1
    assert [r["id"] for r in await root.ok("GET", "/log/search", params={"keyword": model})] == [
        row["id"]
    ]
    own = await user.ok("GET", "/log/self/search", params={"keyword": request_id})
    assert [r["id"] for r in own] == [row["id"]]
    # Another user's search never reaches a row not theirs; wildcards are literal.
    assert await other.ok("GET", "/log/self/search", params={"keyword": request_id}) == []
    assert await root.ok("GET", "/log/search", params={"keyword": "%"}) == []
    await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_log_pages_by_p_and_by_cursor(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer
) -> None:
    """One API's ``p`` pages and unigate's cursors over the same rows: three calls, a page
    of one row each way, the newest first; the answer's cursors lead to the next and previous
    pages and are "" at the ends; a cursor that is not one is refused in One API's envelope."""
    model = unique("pages-gpt-")
    channel = await sim_channel(root.ok, simulator, model)
    user = await new_user(stack, root, apis, quota=5_000_000)
    token = await user.ok("POST", "/token/", json={"name": "pages", "unlimited_quota": True})
    client = openai.AsyncOpenAI(
        api_key=token["key"], base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    for _ in range(3):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
    deadline = asyncio.get_running_loop().time() + 20
    while len(rows := await root.ok("GET", "/log/", params={"model_name": model})) < 3:
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.2)
    newest_first = [r["id"] for r in rows]
    assert [(r["created_at"], r["id"]) for r in rows] == sorted(
        ((r["created_at"], r["id"]) for r in rows), reverse=True
    )

    for path, who in (("/log/", root), ("/log/self", user)):
        base = {"model_name": model, "size": 1}
        by_p = [await who.ok("GET", path, params={**base, "p": p}, whole=True) for p in range(4)]
        assert [[r["id"] for r in a["data"]] for a in by_p] == [[i] for i in newest_first] + [[]]
        assert all(a["total"] == 3 and a["total_capped"] is False for a in by_p)

        first = by_p[0]
        assert first["newer_than"] == "" and first["older_than"]
        second = await who.ok(
            "GET", path, params={**base, "older_than": first["older_than"]}, whole=True
        )
        assert [r["id"] for r in second["data"]] == newest_first[1:2]
        back = await who.ok(
            "GET", path, params={**base, "newer_than": second["newer_than"]}, whole=True
        )
        assert [r["id"] for r in back["data"]] == newest_first[:1]
        last = await who.ok("GET", path, params={**base, "oldest": "true"}, whole=True)
        assert [r["id"] for r in last["data"]] == newest_first[2:]
        assert last["older_than"] == "" and last["newer_than"]

    for bad in ("12", "x_1", "1_9999999999999999999", "1_99999999999999999999", "1_2_3"):
        r = await root.raw("GET", "/log/", params={"older_than": bad})
        assert r.status_code == 200 and r.json()["success"] is False, (bad, r.text)
    both = await root.raw("GET", "/log/", params={"older_than": "1_1", "oldest": "true"})
    assert both.status_code == 200 and both.json()["success"] is False, both.text
    await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_openai_routes_one_api_declares_but_unigate_does_not_serve_answer_501(
    stack: Stack, tenant: Any
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        for method, path in NOT_IMPLEMENTED:
            concrete = path.replace("{model:path}", "gpt-4o").replace("{", "").replace("}", "")
            r = await http.request(method, concrete, json={} if method == "POST" else None)
            assert r.status_code == 501, (method, concrete, r.status_code)
            assert r.json()["error"]["code"] == "api_not_implemented", r.text
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    with pytest.raises(openai.APIStatusError) as info:
        await client.files.list()
    assert info.value.status_code == 501
    with pytest.raises(openai.APIStatusError) as info:
        await client.fine_tuning.jobs.retrieve("ftjob-1")
    assert info.value.status_code == 501


async def test_the_channel_proxy_serves_administrators_keys_only(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer
) -> None:
    channel = await root.ok(
        "POST",
        "/channel/",
        json={"type": 1, "key": SIM_KEY, "base_url": simulator.url, "models": unique("px-")},
    )
    admin = await new_user(stack, root, apis, role="admin")
    user = await new_user(stack, root, apis)
    admin_key = (await admin.ok("POST", "/token/", json={"name": "px", "unlimited_quota": True}))[
        "key"
    ]
    user_key = (await user.ok("POST", "/token/", json={"name": "px", "unlimited_quota": True}))[
        "key"
    ]
    proxied = f"/v1/oneapi/proxy/{channel['id']}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        as_admin = {"Authorization": f"Bearer {admin_key}"}
        # The simulator takes only the channel's key: a 200 means the relay set it.
        r = await http.get(f"{proxied}/v1/models", headers=as_admin)
        assert r.status_code == 200 and r.json()["object"] == "list", r.text
        r = await http.post(
            f"{proxied}/v1/chat/completions",
            headers=as_admin,
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "via proxy"}]},
        )
        assert r.status_code == 200, r.text
        assert "via proxy" in r.json()["choices"][0]["message"]["content"]
        request_id = r.headers["x-request-id"]
        # The provider's own refusal comes back as it is.
        r = await http.post(f"{proxied}/v1/chat/completions", headers=as_admin, json={})
        assert r.status_code == 400 and "error" in r.json()
        # A user's key, no key, a channel that does not exist: refused before any provider.
        r = await http.get(f"{proxied}/v1/models", headers={"Authorization": f"Bearer {user_key}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "proxy_not_allowed"
        assert (await http.get(f"{proxied}/v1/models")).status_code == 401
        r = await http.get(f"/v1/oneapi/proxy/{NO_ID}/v1/models", headers=as_admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "channel_not_found"
    # It reached a provider, so it has its ledger row: unpriced, as One API leaves it.
    (row,) = await wait_for_log(root, "/log/", {"request_id": request_id})
    assert row["endpoint"] == "oneapi.proxy" and row["quota"] == 0
    assert row["channel"] == channel["id"] and row["status_code"] == 200
    assert row["username"] == admin.user["username"]
    await root.ok("DELETE", f"/channel/{channel['id']}")
