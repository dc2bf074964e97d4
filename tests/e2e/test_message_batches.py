"""Anthropic's Message Batches through the gateway: the real ``anthropic`` SDK
(``client.messages.batches``) against the gateway, an Anthropic channel on the strict
simulator (``unigate_sim.anthropic.batches``):

* create, retrieve, list, results, cancel and delete, with the SDK's own ``results()``
  following the gateway's ``results_url``;
* one ledger row per result at the provider's usage and the batch price (50 %: computed here
  from the tokens), errored, canceled and expired results at 0 with their status;
* results fetched again, and through a second gateway: no row more;
* a batch no client fetches billed by auth's poller;
* a balance that cannot cover the whole batch refused 403 before any upstream call;
* another user's key finds nothing (404, Anthropic's shape); client mistakes are 4xx.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Any

import anthropic
import asyncpg
import httpx
import orjson
import pytest

from tests import admin_writes
from tests.e2e.conftest import ExtraGateway
from tests.e2e.provider_support import alias, create_mapped_channel, running
from tests.e2e.test_anthropic import ANTHROPIC, CLAUDE_KEY, SONNET, Claude
from unigate.pricing import DEFAULT_BATCH_RATIO
from unigate.request_ids import derived_request_id
from unigate_cli.devstack import Stack

BATCH_ROWS = "SELECT * FROM logs WHERE token_id = $1 AND endpoint = 'messages.batches'"


@pytest.fixture
async def claude(pg: asyncpg.Pool) -> AsyncIterator[Claude]:
    sim = Claude()
    sim.app.state.batch_delay = 0.3
    for up in running(sim):
        yield up
        # Before this provider goes: every batch the test left open ends 0.3 s after its
        # creation and is billed by auth's poller (every second here), which releases its
        # reservation; without the provider it would hold it into later tests.
        deadline = time.monotonic() + 60
        while await pg.fetchval(
            "SELECT count(*) FROM message_batches WHERE state IN ('creating', 'open')"
        ):
            assert time.monotonic() < deadline, "a batch was never billed"
            await asyncio.sleep(0.2)


async def batch_channel(pg: asyncpg.Pool, secret_key: str, sim: Claude) -> tuple[str, str]:
    """A fresh Anthropic channel on ``sim``: two client model names, one served as Claude
    Sonnet 4, the other as a model the provider does not have (its requests end errored)."""
    good, bad = alias("batch"), alias("batch-bad")
    await create_mapped_channel(
        pg,
        secret_key,
        type=ANTHROPIC,
        name="claude-batches",
        key=CLAUDE_KEY,
        base_url=sim.url,
        models={good: SONNET, bad: "claude-none-0"},
    )
    return good, bad


async def new_key(
    pg: asyncpg.Pool, quota: int = 10**9, remain: int = 10**9
) -> tuple[int, admin_writes.NewToken]:
    user = await admin_writes.create_user(
        pg, username=alias("batcher"), password="a-long-password", quota=quota
    )
    return user, await admin_writes.create_token(
        pg, user_id=user, name="batches", remain_quota=remain
    )


def sdk(base_url: str, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0, timeout=60)


def request(custom_id: str, model: str, text: str, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def batch_quota(input_tokens: int, output_tokens: int) -> int:
    """A model without a list price costs One API's ratio 1 (0.002 USD per 1K tokens, input
    and output alike: one quota unit per token); a batch costs half (Anthropic's discount),
    rounded up as the ledger rounds."""
    return math.ceil((input_tokens + output_tokens) * Fraction(1, 2))


async def ended(client: anthropic.AsyncAnthropic, batch_id: str, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while True:
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, batch
        await asyncio.sleep(0.2)


async def batch_rows(pg: asyncpg.Pool, token_id: int, n: int, within: float = 30) -> list[Any]:
    deadline = time.monotonic() + within
    while True:
        rows = await pg.fetch(BATCH_ROWS + " ORDER BY client_request_id", token_id)
        if len(rows) >= n:
            return list(rows)
        assert time.monotonic() < deadline, f"{len(rows)} batch rows, expected {n}"
        await asyncio.sleep(0.1)


def batch_calls(sim: Claude) -> list[dict[str, Any]]:
    return [c for c in sim.calls if c["path"].startswith("/v1/messages/batches")]


async def test_a_batch_end_to_end_billed_once_per_result_at_the_batch_price(
    stack: Stack,
    pg: asyncpg.Pool,
    secret_key: str,
    claude: Claude,
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    assert DEFAULT_BATCH_RATIO == 0.5
    good, bad = await batch_channel(pg, secret_key, claude)
    user, key = await new_key(pg)
    claude.app.state.batch_expired = {"late"}
    client = sdk(stack.gateway_url, key.key)
    asked = int(time.time())
    batch = await client.messages.batches.create(
        requests=[
            request("first", good, "hello batch"),
            request("second", good, "a somewhat longer question for the batch"),
            request("broken", good, "hi", top_k="many"),
            request("late", good, "too late"),
            request("unknown", bad, "hi"),
        ]
    )
    assert batch.type == "message_batch" and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 5
    created = batch_calls(claude)[-1]
    assert created["headers"]["x-api-key"] == CLAUDE_KEY
    assert created["headers"]["anthropic-version"] == "2023-06-01"
    # The channel's names for the models went upstream, never the client's.
    assert {r["params"]["model"] for r in created["body"]["requests"]} == {
        SONNET,
        "claude-none-0",
    }
    done = await ended(client, batch.id)
    assert done.results_url == f"{stack.gateway_url}/v1/messages/batches/{batch.id}/results"
    assert done.request_counts.succeeded == 2 and done.request_counts.expired == 1
    assert done.request_counts.errored == 2
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert {k: r.type for k, r in results.items()} == {
        "first": "succeeded",
        "second": "succeeded",
        "broken": "errored",
        "late": "expired",
        "unknown": "errored",
    }
    rows = {r["client_request_id"]: r for r in await batch_rows(pg, key.id, 5)}
    total = 0
    for custom_id in ("first", "second"):
        result = results[custom_id]
        assert result.type == "succeeded"
        usage = result.message.usage
        row = rows[custom_id]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            usage.input_tokens,
            usage.output_tokens,
        )
        assert row["quota"] == batch_quota(usage.input_tokens, usage.output_tokens)
        assert row["status_code"] == 200 and row["error_code"] == ""
        assert row["model_ratio"] == 0.5 and not row["estimated"]
        # Its time is when the gateway took the batch (before the provider's creation).
        assert asked <= row["created_at"] <= batch.created_at.timestamp()
        total += row["quota"]
    assert (rows["broken"]["status_code"], rows["broken"]["error_code"]) == (400, "batch_errored")
    assert (rows["unknown"]["status_code"], rows["unknown"]["error_code"]) == (
        404,
        "batch_errored",
    )
    assert (rows["late"]["status_code"], rows["late"]["error_code"]) == (408, "batch_expired")
    assert all(rows[c]["quota"] == 0 for c in ("broken", "late", "unknown"))
    assert len({r["request_id"] for r in rows.values()}) == 5
    assert len({r["created_at"] for r in rows.values()}) == 1
    assert len({r["created_at"] for r in rows.values()}) == 1
    assert rows["first"]["request_id"] == derived_request_id(
        int(rows["first"]["request_id"][:11], 16), batch.id, "first"
    )
    # Fetched again, here and through a second gateway, and retrieved: no row more.
    other = sdk(extra_gateway().url, key.key)
    again = [r async for r in await other.messages.batches.results(batch.id)]
    assert len(again) == 5
    [r async for r in await client.messages.batches.results(batch.id)]
    await client.messages.batches.retrieve(batch.id)
    await asyncio.sleep(1.5)  # a poll of auth's poller, too
    assert len(await pg.fetch(BATCH_ROWS, key.id)) == 5
    used = await pg.fetchval("SELECT used_quota FROM tokens WHERE id = $1", key.id)
    assert used == total
    assert await pg.fetchval("SELECT quota FROM users WHERE id = $1", user) == 10**9 - total
    # Listed (the user's own only), then deleted: gone for good.
    page = await client.messages.batches.list(limit=10)
    assert [b.id for b in page.data] == [batch.id]
    deleted = await client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)


async def test_a_canceled_batch_costs_nothing_and_releases_its_reservation(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    claude.app.state.batch_delay = 2.0
    good, _ = await batch_channel(pg, secret_key, claude)
    _, key = await new_key(pg)
    client = sdk(stack.gateway_url, key.key)
    batch = await client.messages.batches.create(
        requests=[request(f"r{i}", good, f"question {i}") for i in range(3)]
    )
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    done = await ended(client, batch.id)
    assert done.request_counts.canceled == 3
    rows = await batch_rows(pg, key.id, 3)
    assert {(r["status_code"], r["error_code"], r["quota"]) for r in rows} == {
        (499, "batch_canceled", 0)
    }


async def test_a_batch_nobody_fetches_is_billed_by_the_poller(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    good, _ = await batch_channel(pg, secret_key, claude)
    _, key = await new_key(pg)
    async with httpx.AsyncClient(timeout=60) as http:
        created = await http.post(
            stack.gateway_url + "/v1/messages/batches",
            headers={"x-api-key": key.key, "anthropic-version": "2023-06-01"},
            json={"requests": [request("only", good, "nobody asks for me")]},
        )
    assert created.status_code == 200, created.text
    assert created.headers["request-id"] == created.headers["x-request-id"]
    # Never retrieved, never fetched: the poller bills it.
    [row] = await batch_rows(pg, key.id, 1)
    assert row["status_code"] == 200 and row["quota"] > 0
    assert row["quota"] == batch_quota(row["prompt_tokens"], row["completion_tokens"])
    results = [c for c in batch_calls(claude) if c["path"].endswith("/results")]
    assert results, "the poller read the results"


async def test_a_balance_short_of_the_whole_batch_is_refused_before_the_provider(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    good, _ = await batch_channel(pg, secret_key, claude)
    # One request alone would fit (prompt + 64 output tokens at half price: ~40 units);
    # twenty do not.
    _, key = await new_key(pg, quota=10**9, remain=200)
    client = sdk(stack.gateway_url, key.key)
    before = len(batch_calls(claude))
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        await client.messages.batches.create(
            requests=[request(f"r{i}", good, "hello") for i in range(20)]
        )
    body: Any = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "billing_error"
    assert len(batch_calls(claude)) == before
    # The refused batch reserved nothing: one that fits goes through.
    small = await client.messages.batches.create(requests=[request("one", good, "hello")])
    assert small.processing_status == "in_progress"


async def test_another_users_key_finds_nothing(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    good, _ = await batch_channel(pg, secret_key, claude)
    _, owner = await new_key(pg)
    _, stranger = await new_key(pg)
    batch = await sdk(stack.gateway_url, owner.key).messages.batches.create(
        requests=[request("mine", good, "private")]
    )
    other = sdk(stack.gateway_url, stranger.key)
    for call in (
        other.messages.batches.retrieve,
        other.messages.batches.cancel,
        other.messages.batches.delete,
    ):
        with pytest.raises(anthropic.NotFoundError) as missing:
            await call(batch.id)
        body: Any = missing.value.body
        assert body["error"]["type"] == "not_found_error"
    page = await other.messages.batches.list()
    assert page.data == []
    async with httpx.AsyncClient(timeout=30) as http:
        results = await http.get(
            f"{stack.gateway_url}/v1/messages/batches/{batch.id}/results",
            headers={"authorization": f"Bearer {stranger.key}"},
        )
    assert results.status_code == 404
    assert results.json()["error"]["type"] == "not_found_error"


async def test_client_mistakes_are_anthropic_shaped_4xx(
    stack: Stack, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    good, _ = await batch_channel(pg, secret_key, claude)
    _, key = await new_key(pg)
    url = stack.gateway_url + "/v1/messages/batches"
    headers = {"x-api-key": key.key, "content-type": "application/json"}
    one = request("a", good, "hi")
    cases: list[tuple[bytes, str]] = [
        (b"{not json", "parsing the body"),
        (b"{}", "requests: Field required"),
        (b'{"requests": []}', "between 1 and 100000"),
        (
            b'{"requests": [' + b",".join([b'{"custom_id":"x","params":{}}'] * 100_001) + b"]}",
            "between 1 and 100000",
        ),
        (orjson.dumps({"requests": [one, one]}), "duplicate custom_id"),
        (
            b'{"requests": [{"custom_id": "bad id!", "params": {}}]}',
            "custom_id: String should match pattern",
        ),
        (
            b'{"requests": [{"custom_id": "a", "params": {"model": "%s"}}]}' % good.encode(),
            "max_tokens: Field required",
        ),
    ]
    before = len(batch_calls(claude))
    async with httpx.AsyncClient(timeout=60) as http:
        for body, message in cases:
            answer = await http.post(url, content=body, headers=headers)
            assert answer.status_code == 400, (message, answer.text)
            error = answer.json()
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
            assert message in error["error"]["message"], error
        for method, path in (
            ("GET", "/msgbatch_nope"),
            ("POST", "/msgbatch_nope/cancel"),
            ("GET", "/msgbatch_nope/results"),
            ("DELETE", "/msgbatch_nope"),
        ):
            answer = await http.request(method, url + path, headers=headers)
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"]["type"] == "not_found_error"
        keyless = await http.get(url)
        assert keyless.status_code == 401
        assert keyless.json()["error"]["type"] == "authentication_error"
    assert len(batch_calls(claude)) == before
