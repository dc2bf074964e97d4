"""One request end to end: gateway → auth → relay → simulator, usage → JetStream → billing →
Postgres, driven with the official openai SDK."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import nats
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette

from tests.e2e.conftest import Tenant
from unigate.namespace import Namespace
from unigate.v1 import events_pb2
from unigate_cli.devstack import Stack
from unigate_sim.openai import count_tokens

NATS_URL = "nats://127.0.0.1:4222"


async def wait_for_rows(pg: asyncpg.Pool, token_id: int, n: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    count = 0
    while time.monotonic() < deadline:
        count = await pg.fetchval("SELECT count(*) FROM logs WHERE token_id = $1", token_id)
        if count >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"ledger has {count} rows for token {token_id}, expected {n}")


async def ledger(pg: asyncpg.Pool, token_id: int) -> tuple[int, int, int]:
    """(rows, sum of their quota, the token's used_quota)."""
    rows, total = await pg.fetchrow(
        "SELECT count(*), coalesce(sum(quota), 0) FROM logs WHERE token_id = $1", token_id
    )
    used = await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", token_id)
    return rows, total, used


async def test_chat_completion(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    resp = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there gateway"},
        ],
    )
    assert resp.choices[0].message.content == "Echo: hello there gateway"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == count_tokens("Echo: hello there gateway")
    assert resp.usage.prompt_tokens > 0
    assert [c["path"] for c in sim_app.state.calls] == ["/v1/chat/completions"]

    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["prompt_tokens"] == resp.usage.prompt_tokens
    assert row["completion_tokens"] == resp.usage.completion_tokens
    assert row["status_code"] == 200
    assert row["channel_id"] == tenant.channel_id
    assert row["model_name"] == "gpt-4o-mini"
    assert not row["estimated"]
    assert row["quota"] > 0


async def test_stream_with_usage(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream these words back please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Echo: stream these words back please"
    assert usage is not None
    assert usage.completion_tokens == count_tokens(text)

    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["is_stream"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


async def test_stream_without_usage_still_bills_exactly(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, sim_app: Starlette
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "no usage for me"}],
        stream=True,
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks), "usage chunk leaked to a client that did not ask"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: no usage for me"
    # The relay asked the provider for usage anyway, so the ledger is exact.
    assert sim_app.state.calls[-1]["body"]["stream_options"] == {"include_usage": True}
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["completion_tokens"] == count_tokens(text)
    assert not row["estimated"]


async def test_embeddings(client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool) -> None:
    resp = await client.embeddings.create(
        model="text-embedding-3-small", input=["first text", "second text"]
    )
    assert len(resp.data) == 2
    assert len(resp.data[0].embedding) == 1536
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens == count_tokens("first text") + count_tokens("second text")
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row["endpoint"] == "embeddings"
    assert row["prompt_tokens"] == resp.usage.prompt_tokens


async def test_models(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= set(models)


async def test_unknown_key_is_401_and_never_reaches_provider(
    stack: Stack, sim_app: Starlette
) -> None:
    bad = openai.AsyncOpenAI(
        api_key="sk-" + "x" * 48, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 401
    body = info.value.response.json()
    assert body["error"]["code"] == "invalid_api_key"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "x" * 20 not in body["error"]["message"], "the key must not be echoed back"
    assert sim_app.state.calls == []


async def test_missing_key_is_401(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        resp = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": 0}',
            "max_tokens",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": "yes"}',
            "stream",
        ),
    ],
)
async def test_bad_input_is_400_and_costs_nothing(
    stack: Stack,
    tenant: Tenant,
    pg: asyncpg.Pool,
    sim_app: Starlette,
    body: bytes,
    param: str | None,
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        resp = await http.post(
            "/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"},
        )
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["param"] == param
    assert sim_app.state.calls == []
    await asyncio.sleep(0.3)
    assert await pg.fetchval("SELECT count(*) FROM logs WHERE token_id = $1", tenant.token_id) == 0


async def test_unknown_model_is_404(client: openai.AsyncOpenAI, sim_app: Starlette) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.response.json()["error"]["code"] == "model_not_found"
    assert sim_app.state.calls == []


async def test_provider_rejection_of_client_input_passes_through(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"not_a_real_argument": 1},
        )
    assert "not_a_real_argument" in info.value.response.json()["error"]["message"]
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert (row["status_code"], row["quota"]) == (400, 0)


async def test_provider_failure_is_an_openai_shaped_5xx(
    client: openai.AsyncOpenAI, tenant: Tenant, sim_app: Starlette
) -> None:
    failure = {
        "error": {
            "message": "The server had an error",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    sim_app.state.fail_next.extend([(500, failure)] * 3)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    assert info.value.response.json()["error"]["code"] == "upstream_error"
    assert SIM_KEY_FRAGMENT not in info.value.response.text


SIM_KEY_FRAGMENT = "kkkkkkkkkk"


async def test_ledger_is_exact_and_redelivery_changes_nothing(
    client: openai.AsyncOpenAI, tenant: Tenant, pg: asyncpg.Pool, namespace: str
) -> None:
    ns = Namespace(namespace)
    nc = await nats.connect(NATS_URL)
    captured: list[events_pb2.UsageEvent] = []

    async def capture(msg: nats.aio.msg.Msg) -> None:
        batch = events_pb2.UsageBatch.FromString(msg.data)
        captured.extend(e for e in batch.events if e.token_id == tenant.token_id)

    sub = await nc.subscribe(ns.usage_subject, cb=capture)
    try:
        n = 12

        async def call(i: int) -> None:
            messages: list[ChatCompletionMessageParam] = [
                {"role": "user", "content": f"request number {i}"}
            ]
            if i % 2:
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            else:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True
                )
                assert [c async for c in stream]

        await asyncio.gather(*(call(i) for i in range(n)))
        await wait_for_rows(pg, tenant.token_id, n)
        rows, total, used = await ledger(pg, tenant.token_id)
        assert (rows, used) == (n, total)
        assert total > 0
        user_used_before = await pg.fetchval("SELECT used_quota FROM users WHERE id = 1")

        # Redeliver every event by hand, under new message ids so JetStream's own
        # de-duplication cannot hide them: the ledger itself must ignore them.
        await sub.unsubscribe()
        assert len(captured) == n
        js = nc.jetstream()
        last_seq = 0
        for event in captured:
            data = events_pb2.UsageBatch(events=[event]).SerializeToString()
            ack = await js.publish(
                ns.usage_subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex}
            )
            last_seq = ack.seq
        await wait_consumed(js, ns, last_seq)
        assert await ledger(pg, tenant.token_id) == (rows, total, used)
        assert await pg.fetchval("SELECT used_quota FROM users WHERE id = 1") == user_used_before
    finally:
        await nc.close()


async def wait_consumed(js: nats.js.JetStreamContext, ns: Namespace, seq: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        info = await js.consumer_info(ns.usage_stream, ns.billing_consumer)
        if info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("billing did not consume the redelivered events")


async def test_unusable_events_are_dead_lettered_not_dropped(
    stack: Stack, pg: asyncpg.Pool, namespace: str
) -> None:
    ns = Namespace(namespace)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        future = events_pb2.UsageEvent(schema_version=99, request_id=uuid.uuid4().hex)
        await js.publish(ns.usage_subject, b"\xff\xfenot a protobuf")
        ack = await js.publish(
            ns.usage_subject, events_pb2.UsageBatch(events=[future]).SerializeToString()
        )
        await wait_consumed(js, ns, ack.seq)
    finally:
        await nc.close()
    reasons = [r["reason"] for r in await pg.fetch("SELECT reason FROM dead_letters")]
    assert any(r.startswith("undecodable") for r in reasons)
    assert "unknown schema_version 99" in reasons
