"""Client mistakes at the edge are 4xx in the client's shape, never 500s: huge integers, NUL
bytes and oversize strings on /api and /v1; plus what auth and billing guard behind it:
passwords that revoke access tokens, throttling per account and address, case-insensitive
usernames, http(s)-only base URLs, and CSV cells that cannot become formulas."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import asyncpg
import httpx
import openai
import pytest
from redis.asyncio import Redis

from tests import admin_writes
from tests.e2e.conftest import Tenant
from tests.e2e.test_management_api import ROOT_PASSWORD, Api, new_user, unique
from tests.e2e.test_management_api import apis as apis
from tests.e2e.test_management_api import root as root
from unigate_cli.devstack import Stack

HUGE = 2**63
BAD_INPUTS: list[tuple[str, str, dict[str, object]]] = [
    # (method, path, request keywords)
    ("GET", "/user/?p=99999999999", {}),
    ("GET", f"/user/?size={HUGE}", {}),
    ("GET", f"/user/{HUGE}", {}),
    ("GET", f"/token/{HUGE * 4}", {}),
    ("DELETE", f"/channel/{HUGE}", {}),
    ("GET", f"/log/?channel={HUGE}", {}),
    ("GET", f"/log/?start_timestamp={-HUGE - 1}", {}),
    ("DELETE", f"/log/?target_timestamp={HUGE}", {}),
    ("GET", "/user/search?keyword=ro%00ot", {}),
    ("GET", "/channel/search?keyword=%00", {}),
    ("GET", "/log/?username=a%00", {}),
    ("GET", "/token/search?keyword=" + "k" * 5000, {}),
    ("POST", "/user/", {"json": {"username": "nul\x00user", "password": "password-1"}}),
    ("POST", "/user/", {"json": {"username": "quota-user", "password": "pw-12345", "quota": HUGE}}),
    ("PUT", "/user/", {"json": {"id": HUGE, "display_name": "x"}}),
    ("POST", "/token/", {"json": {"name": "t\x00"}}),
    ("POST", "/token/", {"json": {"name": "t", "remain_quota": HUGE}}),
    ("POST", "/token/", {"json": {"name": "t", "rpm_limit": 2**31}}),
    ("POST", "/token/", {"json": {"name": "n" * 1000}}),
    ("POST", "/channel/", {"json": {"type": 1, "name": "c\x00", "key": "k", "models": "m"}}),
    ("POST", "/channel/", {"json": {"type": 2**40, "name": "c", "key": "k", "models": "m"}}),
    ("POST", "/redemption/", {"json": {"name": "r", "quota": 1, "count": HUGE}}),
    ("PUT", "/option/", {"json": {"key": "Notice", "value": "a\x00b"}}),
    ("PUT", "/option/", {"json": {"key": "Notice", "value": HUGE * HUGE}}),
    ("PUT", "/user/self", {"json": {"display_name": "me\x00"}}),
]


@pytest.mark.parametrize(("method", "path", "kw"), BAD_INPUTS, ids=[p for _, p, _ in BAD_INPUTS])
async def test_out_of_range_nul_and_oversize_inputs_are_400_with_the_envelope(
    root: Api,
    method: str,
    path: str,
    kw: dict[str, object],
) -> None:
    r = await root.raw(method, path, **kw)  # type: ignore[arg-type]
    # One API's refusal: HTTP 200 with success false.
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    body = r.json()
    assert body["success"] is False and body["message"]
    assert len(r.content) < 4096  # the oversize input is not echoed back
    # The connection was not reset: the same client goes on.
    assert (await root.raw("GET", "/user/self")).status_code == 200


async def test_a_login_with_a_huge_username_leaves_no_big_redis_key(
    stack: Stack, redis: Redis, namespace: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=60) as http:
        # Over /api's 1 MiB body limit: refused before it is read.
        r = await http.post(
            "/user/login", json={"username": "u" * 20 * 1024 * 1024, "password": "x"}
        )
        assert r.status_code == 413 and r.json()["success"] is False
        # Under the body limit but over the field's: refused (One API's 200), before auth.
        r = await http.post("/user/login", json={"username": "u" * 60_000, "password": "x"})
        assert r.status_code == 200 and r.json()["success"] is False
        # A failure that does reach auth is keyed by a hash of the name.
        r = await http.post("/user/login", json={"username": "U" * 64, "password": "wrong-pw"})
        assert r.status_code == 200 and r.json()["success"] is False
    # Bound to the database like every key of auth's (<namespace>:<install>:login-fail:...).
    match = f"{namespace}:*:login-fail:*"
    keys = [k async for k in redis.scan_iter(match=match, count=1000)]
    assert keys
    assert max(len(k) for k in keys) < 200, max(keys, key=len)


async def test_huge_ints_and_nul_bytes_on_v1_are_openai_shaped_400s(
    stack: Stack, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant.key}"}
    messages = [{"role": "user", "content": "hi"}]
    bodies = [
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": messages, "max_tokens": HUGE},
        ),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 2**64},
        ),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "x", "max_tokens": 2**40}),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": "x", "max_output_tokens": HUGE}),
        ("/v1/messages", {"model": "claude-x", "messages": messages, "max_tokens": HUGE}),
    ]
    async with httpx.AsyncClient(timeout=60) as http:
        for path, body in bodies:
            r = await http.post(
                stack.gateway_url + path,
                headers={**headers, "x-api-key": tenant.key, "Content-Type": "application/json"},
                # The standard library writes integers of any size (orjson stops at 64 bits).
                content=json.dumps(body).encode(),
            )
            assert r.status_code == 400, (path, r.status_code, r.text)
            assert r.json().get("error") or r.json().get("type") == "error", r.text
        # A NUL byte or 100 KB in a model name (routing looks it up in Postgres).
        for model in ("gpt\x00-4o", "m" * 100_000):
            for path in ("/v1/chat/completions", "/v1/messages"):
                r = await http.post(
                    stack.gateway_url + path,
                    headers={**headers, "x-api-key": tenant.key},
                    json={"model": model, "messages": messages, "max_tokens": 5},
                )
                assert r.status_code == 400, r.text
                assert "model" in r.text


async def test_password_change_and_reset_revoke_sessions_and_access_tokens(
    stack: Stack,
    root: Api,
    apis: list[Api],
) -> None:
    async def bearer_ok(token: str) -> bool:
        async with httpx.AsyncClient(base_url=stack.gateway_url + "/api", timeout=30) as http:
            r = await http.get("/user/self", headers={"Authorization": f"Bearer {token}"})
            # A revoked access token is One API's refusal: 200, success false.
            assert r.status_code == 200, r.text
            return bool(r.json()["success"])

    # An admin's reset.
    user = await new_user(stack, root, apis)
    token = await user.ok("GET", "/user/token")
    second = Api(stack)
    apis.append(second)
    assert (await second.login(user.user["username"], user.user["password"])).json()["success"]
    assert await bearer_ok(token)
    await root.ok("PUT", "/user/", json={"id": user.user["id"], "password": "reset-pw-123"})
    assert not await bearer_ok(token)
    assert (await user.raw("GET", "/user/self")).status_code == 401
    assert (await second.raw("GET", "/user/self")).status_code == 401

    # The user's own change: other sessions and the token end; this session goes on.
    user = await new_user(stack, root, apis)
    token = await user.ok("GET", "/user/token")
    other = Api(stack)
    apis.append(other)
    assert (await other.login(user.user["username"], user.user["password"])).json()["success"]
    await user.ok(
        "PUT",
        "/user/self",
        json={"password": "changed-pw-123", "original_password": user.user["password"]},
    )
    assert not await bearer_ok(token)
    assert (await other.raw("GET", "/user/self")).status_code == 401
    assert (await user.raw("GET", "/user/self")).status_code == 200


async def test_login_throttle_is_per_account_and_address_and_slows_instead_of_locking(
    stack: Stack,
    root: Api,
    apis: list[Api],
) -> None:
    victim = await new_user(stack, root, apis)
    name, password = victim.user["username"], victim.user["password"]
    # Five failures from each of three addresses: each address is locked out of this account
    # (and the case of the name does not matter), the owner's address is not.
    for i in range(3):
        attacker = Api(stack, ip=f"192.0.2.{10 + i}")
        apis.append(attacker)
        for _ in range(5):
            refused = await attacker.login(name.upper(), "wrong-password")
            assert refused.status_code == 200 and refused.json()["success"] is False
        r = await attacker.login(name, password)
        assert r.status_code == 429, r.text
    # 15 failures on the account from anywhere: past the ceiling (10), tries are slowed.
    owner = Api(stack, ip="192.0.2.99")
    apis.append(owner)
    started = time.monotonic()
    assert (await owner.login(name, password)).json()["success"] is True
    assert time.monotonic() - started >= 1.0  # 0.25 s doubled per failure over 10, at most 5


async def test_usernames_are_unique_regardless_of_case(
    stack: Stack,
    root: Api,
    apis: list[Api],
) -> None:
    r = await root.raw("POST", "/user/", json={"username": "ROOT", "password": "pw-1234567"})
    assert r.status_code == 200 and r.json()["success"] is False, r.text
    name = unique("Case")
    await root.ok("POST", "/user/", json={"username": name, "password": "pw-1234567"})
    r = await root.raw("POST", "/user/", json={"username": name.lower(), "password": "pw-1234567"})
    assert r.status_code == 200 and r.json()["success"] is False
    await root.ok("PUT", "/option/", json={"key": "RegisterEnabled", "value": True})
    try:
        async with httpx.AsyncClient(base_url=root.http.base_url, timeout=30) as http:
            r = await http.post(
                "/user/register", json={"username": "Root", "password": "pw-1234567"}
            )
            assert r.status_code == 200 and r.json()["success"] is False
    finally:
        await root.ok("PUT", "/option/", json={"key": "RegisterEnabled", "value": False})
    # root still logs in as itself.
    again = Api(stack)
    apis.append(again)
    assert (await again.login("root", ROOT_PASSWORD)).json()["success"]


async def test_base_url_must_be_http_and_a_stored_bad_one_fails_the_call_cleanly(
    stack: Stack,
    root: Api,
    pg: asyncpg.Pool,
    secret_key: str,
) -> None:
    for url in ("file:///etc/passwd", "gopher://x", "http://", "javascript:alert(1)", "ftp://h/"):
        r = await root.raw(
            "POST",
            "/channel/",
            json={"type": 1, "name": "bad", "key": "k", "models": "m", "base_url": url},
        )
        assert r.status_code == 200 and "base_url" in r.json()["message"], (url, r.text)
        assert r.json()["success"] is False
    good = await root.ok(
        "POST",
        "/channel/",
        json={"type": 1, "name": "ok", "key": "k", "models": "m", "base_url": "https://h"},
    )
    r = await root.raw("PUT", "/channel/", json={"id": good["id"], "base_url": "file:///x"})
    assert r.status_code == 200 and r.json()["success"] is False
    with pytest.raises(ValueError):
        await admin_writes.create_channel(
            pg, secret_key=secret_key, type=1, name="x", key="k", models="m", base_url="file:///"
        )
    # One stored before the check (written straight to the table): the call fails cleanly.
    model = unique("file-model-")
    channel_id = await admin_writes.create_channel(
        pg, secret_key=secret_key, type=1, name="stored-bad", key="k", models=model
    )
    await pg.execute(
        "UPDATE channels SET base_url = 'file:///etc/passwd' WHERE id = $1", channel_id
    )
    token = await admin_writes.create_token(pg, user_id=1, name="file-test", unlimited_quota=True)
    client = openai.AsyncOpenAI(
        api_key=token.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        assert 500 <= caught.value.status_code < 600 and caught.value.status_code != 500
        assert "passwd" not in str(caught.value.body)
    finally:
        await pg.execute("DELETE FROM channels WHERE id = $1", channel_id)
        await pg.execute("DELETE FROM abilities WHERE channel_id = $1", channel_id)


async def test_csv_export_escapes_cells_that_would_be_formulas(
    stack: Stack,
    root: Api,
    pg: asyncpg.Pool,
    channel_id: int,
) -> None:
    names = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "plain"]
    tag = unique("csv")
    for name in names:
        token = await admin_writes.create_token(
            pg, user_id=1, name=f"{name}{tag}", unlimited_quota=True
        )
        client = openai.AsyncOpenAI(
            api_key=token.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
        )
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    deadline = time.monotonic() + 30
    while True:
        rows = await pg.fetchval("SELECT count(*) FROM logs WHERE token_name LIKE $1", f"%{tag}")
        if rows == len(names) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    r = await root.raw("GET", "/log/export")
    assert r.status_code == 200
    exported = {
        row["token_name"]
        for row in csv.DictReader(io.StringIO(r.text))
        if row["token_name"].endswith(tag)
    }
    assert exported == {
        '\'=HYPERLINK("http://x")' + tag,
        "'+1+1" + tag,
        "'-2+3" + tag,
        "'@SUM(A1)" + tag,
        "'\tTAB" + tag,
        "plain" + tag,
    }
