"""Content logging (issue 18): off by default, on for one key through the ContentLogTokens
option. That key's request and answer bodies are stored in ``request_contents`` (apart from
the ledger), shown by ``/api/log/?content=true`` and in the CSV export; another key's are not
stored; no secret (the caller's key, a credential-named field) is ever stored."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import openai

from tests.e2e.conftest import SIM_KEY, ThreadedServer
from tests.e2e.test_management_api import (
    Api,
    apis,
    new_user,
    root,
    sim_channel,
    unique,
    wait_for_log,
)
from unigate_billing.contents import ContentWriter
from unigate_cli.devstack import Stack

__all__ = ["apis", "root"]  # fixtures


async def _with_content(api: Api, request_id: str) -> dict[str, Any]:
    """The row of ``request_id`` with its bodies, once billing has stored them."""
    deadline = time.monotonic() + 30
    while True:
        rows = await api.ok("GET", "/log/", params={"request_id": request_id, "content": "true"})
        if (rows and rows[0]["request_body"]) or time.monotonic() > deadline:
            return rows[0] if rows else {}
        await asyncio.sleep(0.3)


async def test_content_logging_stores_one_keys_bodies_and_no_secret(
    stack: Stack, root: Api, apis: list[Api], simulator: ThreadedServer, pg: asyncpg.Pool
) -> None:
    model = unique("content-gpt-")
    channel = await sim_channel(root.ok, simulator, model)
    user = await new_user(stack, root, apis, quota=5_000_000)
    logged = await user.ok("POST", "/token/", json={"name": "logged", "unlimited_quota": True})
    quiet = await user.ok("POST", "/token/", json={"name": "quiet", "unlimited_quota": True})
    options = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
    assert options["ContentLogTokens"] == "" and options["ContentLogGroups"] == ""  # off
    await root.ok("PUT", "/option/", json={"key": "ContentLogTokens", "value": str(logged["id"])})

    def sdk(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
        )

    try:
        # The quiet key first: its bodies would reach billing before the logged key's.
        q = await sdk(quiet["key"]).chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "quiet words"}]
        )
        # The caller's key inside the content, and a credential-named field.
        said = f"logged words; my key is {logged['key']}"
        raw = await sdk(logged["key"]).chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": said}],
            extra_body={"metadata": {"api_key": "sk-other-secret-value-123"}},
        )
        answer = raw.parse()
        stream = await sdk(logged["key"]).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "stream it"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        logged_id, quiet_id = raw.headers["x-request-id"], q.headers["x-request-id"]

        row = await _with_content(root, logged_id)
        assert "logged words" in row["request_body"], row
        assert logged["key"] not in row["request_body"] and "[redacted]" in row["request_body"]
        assert "sk-other-secret-value-123" not in row["request_body"]
        # The simulator echoes the prompt: the answer is stored, the key in it redacted.
        said_back = answer.choices[0].message.content or ""
        assert said_back.replace(logged["key"], "[redacted]") in row["response_body"]
        assert logged["key"] not in row["response_body"]
        # The owner sees it too; the quiet key's row has no bodies, and none were stored.
        (own,) = await user.ok(
            "GET", "/log/self", params={"request_id": logged_id, "content": "true"}
        )
        assert own["request_body"] == row["request_body"]
        (quiet_row,) = await wait_for_log(root, "/log/", {"request_id": quiet_id})
        assert "request_body" in quiet_row
        stored = await pg.fetch(
            "SELECT request_id, request_body, response_body FROM request_contents"
            " WHERE token_id = ANY($1::bigint[])",
            [logged["id"], quiet["id"]],
        )
        ids = {r["request_id"] for r in stored}
        assert logged_id in ids and quiet_id not in ids
        for r in stored:
            for secret in (logged["key"], quiet["key"], SIM_KEY, "sk-other-secret-value-123"):
                assert secret not in r["request_body"] and secret not in r["response_body"]
        # The stream's answer is what the client read, as the SSE bytes it was sent.
        deadline, streamed_body = time.monotonic() + 30, None
        while streamed_body is None and time.monotonic() < deadline:
            streamed_body = await pg.fetchval(
                "SELECT response_body FROM request_contents WHERE token_id = $1"
                " AND request_body LIKE '%stream it%'",
                logged["id"],
            )
            await asyncio.sleep(0.3)
        assert streamed and streamed_body is not None and "data:" in streamed_body
        # The CSV export carries the bodies.
        csv = await root.raw("GET", "/log/export", params={"request_id": logged_id})
        assert "request_body" in csv.text.splitlines()[0]
        assert "logged words" in csv.text and logged["key"] not in csv.text
        # And the ledger row is the same as any: content logging is beside it.
        (ledger,) = await pg.fetch("SELECT quota FROM logs WHERE request_id = $1", logged_id)
        assert ledger["quota"] > 0
    finally:
        await root.ok("PUT", "/option/", json={"key": "ContentLogTokens", "value": ""})
        await root.ok("DELETE", f"/channel/{channel['id']}")


async def test_bodies_past_their_retention_are_forgotten(pg: asyncpg.Pool) -> None:
    now = int(time.time())
    old, fresh = f"old-{now}-{id(pg)}", f"fresh-{now}-{id(pg)}"
    await pg.executemany(
        "INSERT INTO request_contents (request_id, request_body, created_at) VALUES ($1, 'x', $2)",
        [(old, now - 3 * 86_400), (fresh, now - 86_400)],
    )
    before = await pg.fetchval("SELECT value FROM options WHERE key = 'ContentLogRetentionDays'")
    await pg.execute(
        "INSERT INTO options (key, value) VALUES ('ContentLogRetentionDays', '2')"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
    try:
        assert await ContentWriter(pg).prune() >= 1
        left = await pg.fetch(
            "SELECT request_id FROM request_contents WHERE request_id = ANY($1::text[])",
            [old, fresh],
        )
        assert [r["request_id"] for r in left] == [fresh]
    finally:
        if before is None:
            await pg.execute("DELETE FROM options WHERE key = 'ContentLogRetentionDays'")
        else:
            await pg.execute(
                "UPDATE options SET value = $1 WHERE key = 'ContentLogRetentionDays'", before
            )
        await pg.execute("DELETE FROM request_contents WHERE request_id = $1", fresh)
