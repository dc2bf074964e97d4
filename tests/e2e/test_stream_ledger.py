"""Streams are billed at the provider's usage, whatever client reads them and however it stops.

The clients users run (the ``openai`` SDK sync and async, the ``anthropic`` SDK, LangChain's
``ChatOpenAI``, a raw SSE reader) close a stream as soon as they read its terminal frame; the
relay holds that frame back until the gateway has the usage, so every complete stream is a
200 row at exactly the provider's figures, and only streams broken off on purpose are 499s.
A relay killed after the usage passed leaves a row at the provider's usage (status 502), and
nothing ever follows ``[DONE]``. Each row is found by the ``X-Request-Id`` its client sent
(recorded as ``client_request_id``).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import orjson
import pytest
from langchain_openai import ChatOpenAI
from starlette.applications import Starlette

from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.provider_support import alias, create_mapped_channel, running
from tests.e2e.test_anthropic import Claude, claude_channel
from tests.e2e.test_gemini import Google, gemini_channel
from unigate_cli.devstack import Stack
from unigate_sim.openai.faults import Fault

PROMPT = "Tell me about ledgers"
# The simulators echo the prompt: a stream broken off after its first words is still far from
# its end (tens of thousands of frames), so the client really leaves mid-stream.
LONG_PROMPT = "Repeat after me: " + "ledger " * 20_000
# Fewer tokens than the echo of LONG_PROMPT has (at least one per word).
LONG_ECHO_TOKENS = 10_000
Usage = tuple[int, int]


@pytest.fixture
def claude() -> Iterator[Claude]:
    yield from running(Claude())


@pytest.fixture
def google() -> Iterator[Google]:
    yield from running(Google())


@dataclass(frozen=True)
class Clients:
    """The clients of one test, all on the tenant's key."""

    stack: Stack
    key: str

    @property
    def v1(self) -> str:
        return self.stack.gateway_url + "/v1"

    def openai_sync(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.key, base_url=self.v1, max_retries=0, timeout=60)

    def openai_async(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.key, base_url=self.v1, max_retries=0, timeout=60)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.key, base_url=self.stack.gateway_url, max_retries=0, timeout=60
        )


def messages(prompt: str = PROMPT) -> Any:
    return [{"role": "user", "content": prompt}]


def rid(cid: str) -> dict[str, str]:
    return {"X-Request-Id": cid}


# ---- one stream per client kind: returns whether it was broken off on purpose --------------


async def sdk_sync(c: Clients, model: str, cid: str) -> bool:
    def run() -> None:
        with c.openai_sync() as client:
            stream = client.chat.completions.create(
                model=model, messages=messages(), stream=True, extra_headers=rid(cid)
            )
            for _ in stream:
                pass

    await asyncio.to_thread(run)
    return False


async def sdk_sync_broken(c: Clients, model: str, cid: str) -> bool:
    def run() -> None:
        with c.openai_sync() as client:
            stream = client.chat.completions.create(
                model=model, messages=messages(LONG_PROMPT), stream=True, extra_headers=rid(cid)
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            stream.close()

    await asyncio.to_thread(run)
    return True


async def sdk_async(c: Clients, model: str, cid: str) -> bool:
    async with c.openai_async() as client:
        stream = await client.chat.completions.create(
            model=model, messages=messages(), stream=True, extra_headers=rid(cid)
        )
        async for _ in stream:
            pass
    return False


async def sdk_async_usage(c: Clients, model: str, cid: str) -> bool:
    async with c.openai_async() as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=messages(),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=rid(cid),
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    return False


async def sdk_async_broken(c: Clients, model: str, cid: str) -> bool:
    async with c.openai_async() as client:
        stream = await client.chat.completions.create(
            model=model, messages=messages(LONG_PROMPT), stream=True, extra_headers=rid(cid)
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    return True


async def langchain(c: Clients, model: str, cid: str) -> bool:
    llm = ChatOpenAI(
        model=model,
        api_key=c.key,  # type: ignore[arg-type]
        base_url=c.v1,
        max_retries=0,
        streaming=True,
        default_headers=rid(cid),
    )
    parts = [part async for part in llm.astream(PROMPT)]
    assert parts
    return False


async def raw_sse(c: Clients, model: str, cid: str, *, close_at_done: bool) -> bool:
    """A bare SSE reader: closes the response at ``[DONE]``, or reads the whole body and checks
    that nothing follows ``[DONE]``."""
    headers = {"Authorization": f"Bearer {c.key}", **rid(cid)}
    body = {"model": model, "messages": messages(), "stream": True}
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("POST", c.v1 + "/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        if close_at_done:
            async for line in resp.aiter_lines():
                if line == "data: [DONE]":
                    break
            else:
                raise AssertionError("no [DONE]")
        else:
            raw = await resp.aread()
            assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"[DONE]") == 1, raw[-300:]
    return False


async def raw_sse_close_at_done(c: Clients, model: str, cid: str) -> bool:
    return await raw_sse(c, model, cid, close_at_done=True)


async def raw_sse_read_all(c: Clients, model: str, cid: str) -> bool:
    return await raw_sse(c, model, cid, close_at_done=False)


async def anthropic_stream(c: Clients, model: str, cid: str) -> bool:
    sdk = c.anthropic()
    async with sdk.messages.stream(
        model=model, max_tokens=200, messages=messages(), extra_headers=rid(cid)
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens > 0
    await sdk.close()
    return False


async def anthropic_raw_events(c: Clients, model: str, cid: str) -> bool:
    sdk = c.anthropic()
    stream = await sdk.messages.create(
        model=model, max_tokens=200, messages=messages(), stream=True, extra_headers=rid(cid)
    )
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    await sdk.close()
    return False


Kind = Callable[[Clients, str, str], Awaitable[bool]]
# 50 streams per channel: (client, how many).
MIX: list[tuple[Kind, int]] = [
    (sdk_sync, 6),
    (sdk_sync_broken, 3),
    (sdk_async, 6),
    (sdk_async_usage, 5),
    (sdk_async_broken, 3),
    (langchain, 6),
    (raw_sse_close_at_done, 6),
    (raw_sse_read_all, 5),
    (anthropic_stream, 5),
    (anthropic_raw_events, 5),
]
MESSAGES_KINDS = {anthropic_stream, anthropic_raw_events}


async def reference_usage(c: Clients, model: str) -> tuple[Usage, Usage]:
    """What the provider reports for PROMPT, read from answers it gave in full: (chat,
    Messages API)."""
    async with c.openai_async() as client:
        chat = await client.chat.completions.create(model=model, messages=messages())
    assert chat.usage is not None
    sdk = c.anthropic()
    message = await sdk.messages.create(model=model, max_tokens=200, messages=messages())
    await sdk.close()
    return (
        (chat.usage.prompt_tokens, chat.usage.completion_tokens),
        (message.usage.input_tokens, message.usage.output_tokens),
    )


async def until_the_gateway_reaches_the_relay(c: Clients, model: str, within: float = 15) -> None:
    """After a relay restart: the gateway's channel to it reconnects after its backoff (up to
    2 s); calls made meanwhile fail fast with 503 (retryable). Wait that out."""
    deadline = time.monotonic() + within
    async with c.openai_async() as client:
        while True:
            try:
                await client.chat.completions.create(model=model, messages=messages())
                return
            except openai.InternalServerError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def rows_by_client_id(
    pg: asyncpg.Pool, cids: list[str], within: float = 30.0
) -> dict[str, asyncpg.Record]:
    deadline = time.monotonic() + within
    while True:
        found = await pg.fetch("SELECT * FROM logs WHERE client_request_id = ANY($1)", cids)
        if len(found) >= len(cids) or time.monotonic() > deadline:
            return {r["client_request_id"]: r for r in found}
        await asyncio.sleep(0.1)


async def run_mix(c: Clients, pg: asyncpg.Pool, model: str) -> None:
    chat_usage, messages_usage = await reference_usage(c, model)
    calls: list[tuple[str, Kind]] = []
    for kind, n in MIX:
        calls += [(f"{kind.__name__}-{secrets.token_hex(6)}", kind) for _ in range(n)]
    assert len(calls) == 50
    broken = await asyncio.gather(*(kind(c, model, cid) for cid, kind in calls))
    rows = await rows_by_client_id(pg, [cid for cid, _ in calls])
    assert len(rows) == 50, f"{len(rows)} of 50 rows"
    wrong = []
    for (cid, kind), was_broken in zip(calls, broken, strict=True):
        row = rows[cid]
        usage = (row["prompt_tokens"], row["completion_tokens"])
        expected = messages_usage if kind in MESSAGES_KINDS else chat_usage
        if was_broken:
            # Left mid-stream, before the provider's usage: 499, counted from what was sent.
            # Unless the gateway had written the whole answer, terminal frame included, into
            # the sockets' buffers (several MB on one machine) before the client's close
            # reached it: then the stream ended, billed at the provider's usage of the long
            # echo. Which one happens is the machine's pace; test_routing's paced
            # test_client_leaving_mid_stream_closes_upstream_and_bills_what_was_sent always
            # leaves mid-stream.
            ok = (row["status_code"] == 499 and row["estimated"]) or (
                row["status_code"] == 200
                and not row["estimated"]
                and row["completion_tokens"] > LONG_ECHO_TOKENS
            )
        else:
            ok = row["status_code"] == 200 and not row["estimated"] and usage == expected
        if not ok:
            wrong.append((kind.__name__, row["status_code"], row["estimated"], usage, expected))
    assert not wrong, wrong
    # Only the streams the client left before their end are estimated.
    left = [rows[cid]["status_code"] == 499 for cid, _ in calls]
    assert sum(r["estimated"] for r in rows.values()) == sum(left)


async def test_openai_channel_streams_billed_at_provider_usage(
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
    await run_mix(Clients(stack, tenant.key), pg, model)


async def test_anthropic_channel_streams_billed_at_provider_usage(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, claude: Claude
) -> None:
    model = alias("claude-sonnet-4")
    await claude_channel(pg, secret_key, claude, model)
    await run_mix(Clients(stack, tenant.key), pg, model)


async def test_gemini_channel_streams_billed_at_provider_usage(
    stack: Stack, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, google: Google
) -> None:
    model = await gemini_channel(pg, secret_key, google, "gemini-2.5-flash")
    await run_mix(Clients(stack, tenant.key), pg, model)


# ---- a relay killed after the usage passed --------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
async def test_relay_killed_after_the_usage_chunk_bills_the_provider_usage(
    stack: Stack,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
    include_usage: bool,
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
    c = Clients(stack, tenant.key)
    (prompt, completion), _ = await reference_usage(c, model)
    # The provider sends every frame, its usage chunk included, then never its [DONE].
    sim_app.state.faults.append(Fault(stall_before_last=True))
    cid = f"killed-{secrets.token_hex(6)}"
    body: dict[str, Any] = {"model": model, "messages": messages(), "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {tenant.key}", **rid(cid)}
    received = b""
    try:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("POST", c.v1 + "/chat/completions", json=body, headers=headers) as resp,
        ):
            assert resp.status_code == 200
            chunks = resp.aiter_bytes()
            # Until the finish chunk (and the usage chunk, when asked for) has come.
            wanted = b'"usage":{' if include_usage else b'"finish_reason":"stop"'
            while wanted not in received:
                received += await chunks.__anext__()
            # The simulator sent its usage chunk right after: let the relay pass it on.
            await asyncio.sleep(1.0)
            stack.stop_process("relay", signal.SIGKILL)
            async for more in chunks:
                received += more
    finally:
        stack.start_process("relay")
        await asyncio.to_thread(stack.wait_ready, 30.0, ["relay"])
        await until_the_gateway_reaches_the_relay(c, model)
    # The client saw the stream cut (an error event, never a [DONE] or anything after one).
    assert b"[DONE]" not in received
    assert received.rstrip().endswith(b"}") and b'"error":' in received.split(b"\n\n")[-2]
    row = (await rows_by_client_id(pg, [cid]))[cid]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
    assert not row["estimated"] and row["status_code"] == 502 and row["quota"] > 0


async def test_responses_api_streams_billed_at_provider_usage(
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
    c = Clients(stack, tenant.key)

    async def sdk(cid: str) -> Usage:
        async with c.openai_async() as client:
            stream = await client.responses.create(
                model=model, input=PROMPT, stream=True, extra_headers=rid(cid)
            )
            events = [event async for event in stream]
        last = events[-1]
        assert last.type == "response.completed" and last.response.usage is not None
        return last.response.usage.input_tokens, last.response.usage.output_tokens

    async def raw_closing_at_completed(cid: str) -> Usage:
        headers = {"Authorization": f"Bearer {c.key}", **rid(cid)}
        body = {"model": model, "input": PROMPT, "stream": True}
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("POST", c.v1 + "/responses", json=body, headers=headers) as resp,
        ):
            async for line in resp.aiter_lines():
                if line.startswith("data: ") and '"type":"response.completed"' in line:
                    usage = orjson.loads(line[6:])["response"]["usage"]
                    return usage["input_tokens"], usage["output_tokens"]
        raise AssertionError("no response.completed")

    calls = [
        (f"responses-{i}-{secrets.token_hex(6)}", (sdk, raw_closing_at_completed)[i % 2])
        for i in range(20)
    ]
    seen = await asyncio.gather(*(kind(cid) for cid, kind in calls))
    rows = await rows_by_client_id(pg, [cid for cid, _ in calls])
    got = [
        (
            rows[cid]["status_code"],
            rows[cid]["estimated"],
            rows[cid]["prompt_tokens"],
            rows[cid]["completion_tokens"],
        )
        for cid, _ in calls
    ]
    assert got == [(200, False, *usage) for usage in seen]


async def test_a_response_held_open_after_its_last_event_still_ends_at_once(
    stack: Stack,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    sim_app: Starlette,
    claude: Claude,
) -> None:
    """The terminal frame waits for the stream's end; a provider that sends its last event
    but keeps the response open must not hold it back (nor the row's usage)."""
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
    claude_model = alias("claude-sonnet-4")
    await claude_channel(pg, secret_key, claude, claude_model)
    c = Clients(stack, tenant.key)
    chat_usage, _ = await reference_usage(c, model)
    _, messages_usage = await reference_usage(c, claude_model)
    sim_app.state.faults.append(Fault(stall_after_last=True))
    claude.app.state.faults.append(Fault(stall_after_last=True))
    started = time.monotonic()
    chat_cid, messages_cid = f"open-chat-{secrets.token_hex(6)}", f"open-msg-{secrets.token_hex(6)}"
    await asyncio.gather(
        sdk_async(c, model, chat_cid), anthropic_raw_events(c, claude_model, messages_cid)
    )
    # Ended within the relay's drain bound, not at a timeout (the gateway's is minutes).
    assert time.monotonic() - started < 5
    assert not sim_app.state.faults and not claude.app.state.faults  # both were held open
    rows = await rows_by_client_id(pg, [chat_cid, messages_cid])
    fields = ("status_code", "estimated", "prompt_tokens", "completion_tokens")
    assert [tuple(rows[cid][f] for f in fields) for cid in (chat_cid, messages_cid)] == [
        (200, False, *chat_usage),
        (200, False, *messages_usage),
    ]
