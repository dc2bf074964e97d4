"""The request id a client is told is its ledger row's.

``x-request-id`` (the SDKs' ``_request_id``) on every ``/v1`` answer — success, stream, error —
and Anthropic's ``request-id`` on the Messages routes are the row's ``request_id``; an id the
client sent (``X-Request-Id`` or OpenAI's ``X-Client-Request-Id``) is kept as
``client_request_id``, and ``/api/log/?request_id=`` finds the row by either.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from typing import Any

import anthropic
import asyncpg
import openai
from starlette.applications import Starlette

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import alias, create_mapped_channel
from tests.e2e.test_management_api import ROOT_PASSWORD, Api
from tests.e2e.test_stream_ledger import rows_by_client_id
from unigate_cli.devstack import Stack

PROVIDER_ERROR = (400, {"error": {"message": "bad", "type": "invalid_request_error"}})


def messages(i: int) -> Any:
    return [{"role": "user", "content": f"request id {i}"}]


async def test_x_request_id_of_100_calls_finds_each_row(
    stack: Stack,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
) -> None:
    model = alias("gpt-4o-mini")
    await create_mapped_channel(
        pg,
        secret_key,
        type=1,
        name="openai",
        key=SIM_KEY,
        base_url=simulator.url,
        models={model: "gpt-4o-mini"},
    )
    sdk = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )
    claude_sdk = anthropic.AsyncAnthropic(
        api_key=tenant.key, base_url=stack.gateway_url, max_retries=0, timeout=60
    )
    # (our id as the client saw it, the id the client sent or "").
    seen: list[tuple[str, str]] = []

    async def unary(i: int) -> None:
        raw = await sdk.chat.completions.with_raw_response.create(model=model, messages=messages(i))
        completion = raw.parse()
        assert completion._request_id == raw.headers["x-request-id"]
        seen.append((raw.headers["x-request-id"], ""))

    async def stream(i: int) -> None:
        async with sdk.chat.completions.with_streaming_response.create(
            model=model, messages=messages(i), stream=True
        ) as resp:
            assert [c async for c in await resp.parse()]
            seen.append((resp.headers["x-request-id"], ""))

    async def client_supplied(i: int) -> None:
        # OpenAI's SDK header on half of them, the common X-Request-Id on the others.
        header = "X-Client-Request-Id" if i % 2 else "X-Request-Id"
        theirs = f"client-{secrets.token_hex(8)}"
        raw = await sdk.chat.completions.with_raw_response.create(
            model=model, messages=messages(i), extra_headers={header: theirs}
        )
        ours = raw.headers["x-request-id"]
        assert ours != theirs and raw.headers["x-client-request-id"] == theirs
        seen.append((ours, theirs))

    async def anthropic_call(i: int) -> None:
        if i % 2:
            raw = await claude_sdk.messages.with_raw_response.create(
                model=model, max_tokens=50, messages=messages(i)
            )
            headers = raw.headers
            assert (await raw.parse())._request_id == headers["request-id"]
        else:
            async with claude_sdk.messages.with_streaming_response.create(
                model=model, max_tokens=50, messages=messages(i), stream=True
            ) as resp:
                assert [e async for e in await resp.parse()]
                headers = resp.headers
        assert headers["request-id"] == headers["x-request-id"]
        seen.append((headers["x-request-id"], ""))

    # Concurrent, but not so many at once that a loaded machine times calls out.
    gate = asyncio.Semaphore(16)

    async def gated(call: Awaitable[None]) -> None:
        async with gate:
            await call

    await asyncio.gather(
        *(gated(unary(i)) for i in range(40)),
        *(gated(stream(i)) for i in range(30)),
        *(gated(client_supplied(i)) for i in range(10)),
        *(gated(anthropic_call(i)) for i in range(10)),
    )
    # Errors (the provider refuses): one at a time, each taking the simulator's next fault.
    for i in range(10):
        sim_app.state.fail_next.append(PROVIDER_ERROR)
        try:
            await sdk.chat.completions.create(model=model, messages=messages(i))
        except openai.BadRequestError as err:
            assert err.request_id == err.response.headers["x-request-id"]
            seen.append((err.response.headers["x-request-id"], ""))
        else:
            raise AssertionError("the provider's error was not passed on")
    await sdk.close()
    await claude_sdk.close()
    assert len(seen) == 100 and len({ours for ours, _ in seen}) == 100

    # Each row is in the ledger under the id its client saw.
    ours = [o for o, _ in seen]
    await _wait_for_request_ids(pg, ours)
    root = Api(stack)
    assert (await root.login("root", ROOT_PASSWORD)).status_code == 200
    try:
        for our_id, their_id in seen:
            for wanted in filter(None, (our_id, their_id)):
                found = await root.ok("GET", "/log/", params={"request_id": wanted})
                assert [(r["request_id"], r["client_request_id"]) for r in found] == [
                    (our_id, their_id)
                ], wanted
    finally:
        await root.close()
    errors = await pg.fetch(
        "SELECT status_code, quota FROM logs WHERE request_id = ANY($1) AND status_code <> 200",
        ours,
    )
    assert [(r["status_code"], r["quota"]) for r in errors] == [(400, 0)] * 10
    supplied = await rows_by_client_id(pg, [t for _, t in seen if t])
    assert {r["request_id"] for r in supplied.values()} == {o for o, t in seen if t}


async def _wait_for_request_ids(pg: asyncpg.Pool, ids: list[str], within: float = 30.0) -> None:
    for _ in range(int(within * 10)):
        n = await pg.fetchval("SELECT count(*) FROM logs WHERE request_id = ANY($1)", ids)
        if n == len(ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{n} of {len(ids)} rows")
