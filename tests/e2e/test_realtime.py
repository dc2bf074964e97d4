"""The Realtime API (``/v1/realtime``) through the gateway with the ``openai`` SDK's realtime
client, against the strict realtime simulator (``unigate_sim.realtime``): a text turn and an
audio turn, each response one ledger row priced exactly (text and audio, cached apart), and
refusals as OpenAI makes them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import grpc
import openai
import orjson
import pytest
import websockets

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, ExtraGateway, Tenant
from tests.e2e.provider_support import (
    Simulator,
    alias,
    create_mapped_channel,
    ledger_rows,
    running,
)
from unigate.charge import quota_of
from unigate.pricing import price_for
from unigate.tokenizer.counting import count_text
from unigate.v1 import auth_pb2, common_pb2, relay_pb2, relay_pb2_grpc
from unigate_sim.realtime import RealtimeSimulator, create_realtime_app

OPENAI, AZURE = 1, 3
MODEL = "gpt-realtime"
# A client's text turn: its message (``user_text``), then this, a text response asked for.
TEXT_RESPONSE = '{"type":"response.create","response":{"output_modalities":["text"]}}'


def user_text(text: str) -> str:
    """The client event adding a user message of ``text`` to the conversation."""
    return orjson.dumps(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    ).decode()


class Realtime(Simulator):
    def __init__(self) -> None:
        super().__init__(create_realtime_app({SIM_KEY}))

    @property
    def sim(self) -> RealtimeSimulator:
        sim: RealtimeSimulator = self.state.realtime
        return sim


@pytest.fixture(scope="module")
def realtime_server() -> Iterator[Realtime]:
    # One simulator for the module: tests whose model names are list-priced (so they cannot
    # be made unique) leave channels for the same name in the session's routing, which must
    # keep reaching a live simulator.
    yield from running(Realtime())


@pytest.fixture
def realtime(realtime_server: Realtime) -> Realtime:
    realtime_server.sim.delta_delay = 0.0
    realtime_server.sim.drop_after_deltas = 0
    return realtime_server


def pricing(model: str) -> auth_pb2.Pricing:
    p = price_for(model)
    return auth_pb2.Pricing(
        model_ratio=p.model_ratio,
        completion_ratio=p.completion_ratio,
        group_ratio=1.0,
        cached_ratio=p.cached_ratio,
        audio_ratio=p.audio_ratio,
        audio_completion_ratio=p.audio_completion_ratio,
    )


def expected_quota(model: str, usage: dict[str, Any]) -> int:
    """What a response.done usage costs at the model's list prices, computed apart from the
    relay's mapping: uncached text in, uncached audio in, cached, text out, audio out."""
    d = usage["input_token_details"]
    cached_audio = d["cached_tokens_details"]["audio_tokens"]
    return quota_of(
        pricing(model),
        common_pb2.Usage(
            prompt_tokens=usage["input_tokens"],
            completion_tokens=usage["output_tokens"],
            cached_tokens=d["cached_tokens"],
            audio_tokens=d["audio_tokens"] - cached_audio,
            audio_completion_tokens=usage["output_token_details"]["audio_tokens"],
        ),
    )


def test_realtime_prices_are_the_list_prices() -> None:
    """gpt-realtime: 4 / 16 USD per 1M text, 32 / 64 audio, 0.40 cached (500,000 units/USD)."""
    u = common_pb2.Usage(
        prompt_tokens=1_000_000 * 3,
        completion_tokens=1_000_000 * 2,
        cached_tokens=1_000_000,
        audio_tokens=1_000_000,
        audio_completion_tokens=1_000_000,
    )
    usd = 4 + 32 + 0.40 + 16 + 64
    assert quota_of(pricing(MODEL), u) == round(usd * 500_000)


async def channel(
    pg: asyncpg.Pool,
    secret_key: str,
    sim: Realtime,
    model: str,
    type: int = OPENAI,
    upstream: str = MODEL,
) -> int:
    return await create_mapped_channel(
        pg,
        secret_key,
        type=type,
        name="realtime",
        key=SIM_KEY,
        base_url=sim.url,
        models={model: upstream},
        config={"realtime_api_version": "2025-04-01-preview"} if type == AZURE else None,
    )


async def run_turns(client: openai.AsyncOpenAI, model: str) -> list[dict[str, Any]]:
    """A text turn, then an audio turn; the response.done events seen."""
    done: list[dict[str, Any]] = []
    async with client.realtime.connect(model=model) as conn:
        created = await conn.recv()
        assert created.type == "session.created", created
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "audio": {"input": {"turn_detection": None}},
            }
        )
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello realtime world"}],
            }
        )
        await conn.response.create()
        text = ""
        async for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "error":
                raise AssertionError(event.error)
            elif event.type == "response.done":
                done.append(event.response.model_dump())
                break
        assert text == "Echo: hello realtime world"
        # The audio turn: 300 ms of PCM16 at 24 kHz, answered in audio.
        pcm = bytes(14_400)
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        await conn.input_audio_buffer.commit()
        await conn.response.create(response={"output_modalities": ["audio"]})
        audio = b""
        async for event in conn:
            if event.type == "response.output_audio.delta":
                audio += base64.b64decode(event.delta)
            elif event.type == "error":
                raise AssertionError(event.error)
            elif event.type == "response.done":
                done.append(event.response.model_dump())
                break
        assert audio and len(audio) % 2 == 0
    return done


async def test_text_and_audio_turns_billed_per_response(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    # Priced by the name the client asks for: the model's own (list prices), not an alias.
    model = MODEL
    await channel(pg, secret_key, realtime, model)
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    done = await run_turns(client, model)
    assert len(done) == 2
    sim_usage = [r["usage"] for r in realtime.sim.responses[-2:]]
    # The audio turn read the text turn's prompt from the cache, audio in and out priced apart.
    assert sim_usage[1]["input_token_details"]["cached_tokens"] > 0
    assert sim_usage[1]["output_token_details"]["audio_tokens"] > 0
    assert sim_usage[1]["input_token_details"]["audio_tokens"] > 0
    rows = [r for r in await ledger_rows(pg, tenant, 3) if r["prompt_tokens"]]
    assert len(rows) == 2
    for row, usage in zip(rows, sim_usage, strict=True):
        assert row["endpoint"] == "realtime"
        assert row["model_name"] == model and row["upstream_model"] == MODEL
        assert row["prompt_tokens"] == usage["input_tokens"]
        assert row["completion_tokens"] == usage["output_tokens"]
        assert row["cached_tokens"] == usage["input_token_details"]["cached_tokens"]
        assert row["quota"] == expected_quota(MODEL, usage)
        assert row["status_code"] == 200 and not row["estimated"]
    # The audio response costs more than text at the same token counts would.
    assert rows[1]["quota"] > rows[0]["quota"]
    # The reservation held for a third response was settled at zero when the session ended.
    unused = [r for r in await ledger_rows(pg, tenant, 3) if not r["prompt_tokens"]]
    assert [r["quota"] for r in unused] == [0]


async def test_azure_channel(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    model = "gpt-4o-realtime-preview"
    await channel(pg, secret_key, realtime, model, type=AZURE, upstream=model)
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0
    )
    done = await run_turns(client, model)
    assert len(done) == 2
    session = realtime.sim.sessions[-1]
    assert session.model == model  # the deployment named like the model
    rows = [r for r in await ledger_rows(pg, tenant, 3) if r["model_name"] == model]
    usages = [r["usage"] for r in realtime.sim.responses[-2:]]
    assert [r["quota"] for r in rows if r["prompt_tokens"]] == [
        expected_quota(model, u) for u in usages
    ]
    assert "api-key" in session.headers


async def test_bad_key_refused_as_openai_does(stack: Any) -> None:
    url = stack.gateway_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    async with websockets.connect(
        url, additional_headers={"Authorization": "Bearer sk-wrong" + "x" * 40}
    ) as ws:
        event = await ws.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert '"invalid_api_key"' in str(event)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    assert closed.value.rcvd.reason == "invalid_request_error.invalid_api_key"


async def test_browser_subprotocol_key_output_bound_and_quota_exhaustion(
    stack: Any, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """A key sent as the browser's subprotocol works; a response goes upstream with the
    output limit its reservation covers; when the next response cannot be reserved the
    session gets an `insufficient_quota` error event and close code 3000; nothing is
    overspent."""
    model = "gpt-4o-mini-realtime-preview"  # priced: 0.60 USD/1M text in, 20 audio out
    await channel(pg, secret_key, realtime, model, upstream=model)
    token = await admin_writes.create_token(pg, user_id=1, name="rt", remain_quota=100)
    url = stack.gateway_url.replace("http", "ws") + f"/v1/realtime?model={model}"
    protocols: list[Any] = ["realtime", f"openai-insecure-api-key.{token.key}"]
    events: list[str] = []
    words = " ".join(f"word{n}" for n in range(30))
    async with websockets.connect(url, subprotocols=protocols) as ws:
        assert ws.subprotocol == "realtime"
        assert '"session.created"' in str(await ws.recv())
        await ws.send(user_text(words))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(20):
                await ws.send(TEXT_RESPONSE)
                while True:
                    events.append(str(await ws.recv()))
                    if '"response.done"' in events[-1]:
                        break
    assert sum('"response.done"' in e for e in events) == 1
    assert '"insufficient_quota"' in events[-1]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    # 100 units reserved whole: the output they cover at 20 USD/1M (audio, the dearest) after
    # a one-token prompt at 10 USD/1M is 9 tokens, and the simulator stopped there.
    answered = realtime.sim.responses[-1]
    assert answered["limit"] == 9 and answered["status"] == "incomplete"
    rows = await wait_rows(pg, token.id, 1)  # the next reservation was refused: no other
    charged = [r for r in rows if r["prompt_tokens"]]
    assert len(charged) == 1
    assert charged[0]["quota"] == expected_quota(model, answered["usage"])
    assert sum(r["quota"] for r in rows) <= 100


async def wait_rows(pg: asyncpg.Pool, token_id: int, n: int) -> list[asyncpg.Record]:
    for _ in range(200):
        rows: list[asyncpg.Record] = await pg.fetch(
            "SELECT * FROM logs WHERE token_id = $1 ORDER BY id", token_id
        )
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(rows)} ledger rows")


async def test_simulator_refuses_what_openai_refuses(realtime: Realtime) -> None:
    """The simulator itself: an unknown event type and a commit of under 100 ms of audio get
    `error` events; a wrong key is closed with 3000."""
    url = realtime.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {SIM_KEY}"}
    ) as ws:
        assert '"session.created"' in str(await ws.recv())
        await ws.send('{"type":"response.make","event_id":"e1"}')
        err = str(await ws.recv())
        assert '"invalid_value"' in err and '"param":"type"' in err and '"e1"' in err
        await ws.send(
            '{"type":"input_audio_buffer.append","audio":"'
            + base64.b64encode(bytes(960)).decode()
            + '"}'
        )
        await ws.send('{"type":"input_audio_buffer.commit"}')
        assert '"input_audio_buffer_commit_empty"' in str(await ws.recv())
    async with websockets.connect(url, additional_headers={"Authorization": "Bearer nope"}) as ws:
        assert '"invalid_api_key"' in str(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000


async def test_client_leaving_mid_response_is_billed_the_providers_usage(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """The client closes its socket while a response streams: the gateway keeps the upstream
    session until the response's `response.done`, and bills exactly that usage."""
    model = "gpt-realtime-mini"
    await channel(pg, secret_key, realtime, model, upstream=model)
    realtime.sim.delta_delay = 0.05
    url = stack.gateway_url.replace("http", "ws") + f"/v1/realtime?model={model}"
    words = " ".join(f"word{n}" for n in range(20))
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {tenant.key}"}
    ) as ws:
        assert '"session.created"' in str(await ws.recv())
        await ws.send(user_text(words))
        await ws.send(TEXT_RESPONSE)
        while '"response.output_text.delta"' not in str(await ws.recv()):
            pass
    # Left after the first delta: the response went on upstream and reported its usage.
    rows = await wait_rows(pg, tenant.token_id, 2)
    charged = [r for r in rows if r["prompt_tokens"]]
    assert len(charged) == 1
    usage = realtime.sim.responses[-1]["usage"]
    # The gateway cancelled it upstream for the client that left; billed what it produced.
    assert realtime.sim.responses[-1]["status"] == "cancelled"
    assert charged[0]["completion_tokens"] == usage["output_tokens"]
    assert charged[0]["quota"] == expected_quota(model, usage)
    assert [r["quota"] for r in rows if not r["prompt_tokens"]] == [0]


async def test_beta_interface_and_server_vad(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """The SDK's beta client (`OpenAI-Beta: realtime=v1`, beta event names) passes through;
    a response the provider's turn detection starts by itself is billed too."""
    model = alias("rt-beta")
    await channel(pg, secret_key, realtime, model)
    # The beta client always dials wss:// unless told the WebSocket base.
    client = openai.AsyncOpenAI(
        api_key=tenant.key,
        base_url=stack.gateway_url + "/v1",
        websocket_base_url=stack.gateway_url.replace("http", "ws") + "/v1",
        max_retries=0,
    )
    async with client.beta.realtime.connect(model=model) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session={"modalities": ["text"]})
        assert (await conn.recv()).type == "session.updated"
        # Server VAD is on by default: a committed turn is answered without response.create.
        pcm = bytes(9_600)
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        await conn.input_audio_buffer.commit()
        text = ""
        async for event in conn:
            if event.type == "response.text.delta":
                text += event.delta
            elif event.type == "error":
                raise AssertionError(event.error)
            elif event.type == "response.done":
                break
        assert text == "Heard 200 ms of audio"
    assert realtime.sim.sessions[-1].beta
    usage = realtime.sim.responses[-1]["usage"]
    rows = await wait_rows(pg, tenant.token_id, 2)
    charged = [r for r in rows if r["prompt_tokens"]]
    assert [r["prompt_tokens"] for r in charged] == [usage["input_tokens"]]
    assert charged[0]["quota"] == expected_quota(model, usage)


async def test_azure_client_inbound(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """The `AzureOpenAI` client's realtime form (`/openai/realtime?api-version&deployment`,
    `api-key`) reaches the same relay."""
    model = alias("rt-az-in")
    await channel(pg, secret_key, realtime, model)
    client = openai.AsyncAzureOpenAI(
        api_key=tenant.key,
        azure_endpoint=stack.gateway_url,
        api_version="2025-04-01-preview",
        websocket_base_url=stack.gateway_url.replace("http", "ws") + "/openai",
        max_retries=0,
    )
    async with client.realtime.connect(model=model) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi from azure"}],
            }
        )
        await conn.response.create(response={"output_modalities": ["text"]})
        text = ""
        async for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "error":
                raise AssertionError(event.error)
            elif event.type == "response.done":
                break
    assert text == "Echo: hi from azure"
    rows = await wait_rows(pg, tenant.token_id, 2)
    assert [r["model_name"] for r in rows if r["prompt_tokens"]] == [model]


async def test_provider_lost_mid_response_is_billed_what_was_forwarded(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """The provider's socket drops mid-answer: the client sees its close code, and the
    response is a row of its own, status 502, billed the output forwarded (estimated)."""
    model = alias("rt-lost")
    await channel(pg, secret_key, realtime, model)
    realtime.sim.drop_after_deltas = 3
    url = stack.gateway_url.replace("http", "ws") + f"/v1/realtime?model={model}"
    seen: list[str] = []
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {tenant.key}"}
    ) as ws:
        assert '"session.created"' in str(await ws.recv())
        await ws.send(user_text("one two three four five"))
        await ws.send(TEXT_RESPONSE)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                seen.append(str(await ws.recv()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    forwarded = "".join(
        orjson.loads(e)["delta"] for e in seen if '"response.output_text.delta"' in e
    )
    assert forwarded == "Echo: one two"
    rows = await wait_rows(pg, tenant.token_id, 2)
    broken = [r for r in rows if r["status_code"] == 502]
    assert len(broken) == 1
    assert broken[0]["estimated"] and broken[0]["error_code"] == "upstream_closed"
    assert broken[0]["completion_tokens"] == count_text(forwarded, MODEL)
    assert broken[0]["prompt_tokens"] > 0 and broken[0]["quota"] > 0


async def read_down(call: Any) -> relay_pb2.RealtimeDown:
    down = await call.read()
    assert isinstance(down, relay_pb2.RealtimeDown), down
    return down


async def test_the_relay_ends_a_closed_session_only_when_the_gateway_ends_its_side(
    stack: Any, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """After the provider's close code the gateway may still write (the next response's
    request id, reserved as this one started): the relay's stream must still be open for it.
    A write to a call the relay had already ended failed the gateway's whole call with
    INTERNAL, the close code unread: the client got 3000 instead of the provider's 1011."""
    model = alias("rt-half-close")
    channel_id = await channel(pg, secret_key, realtime, model)
    realtime.sim.drop_after_deltas = 2
    relay = stack.client_channel("relay", "gateway")
    try:
        call = relay_pb2_grpc.RelayServiceStub(relay).Realtime(timeout=30)
        open_request = relay_pb2.RelayRequest(
            request_id="rt-half-close-1",
            endpoint="realtime",
            channel_id=channel_id,
            channel_type=OPENAI,
            upstream_model=MODEL,
            model=model,
            stream=True,
        )
        await call.write(relay_pb2.RealtimeUp(open=open_request))
        assert (await read_down(call)).opened
        assert '"session.created"' in (await read_down(call)).event
        for event in (user_text("one two three"), TEXT_RESPONSE):
            await call.write(relay_pb2.RealtimeUp(event=event))
        while not (down := await read_down(call)).close_code:
            assert not down.HasField("error"), down
        assert down.close_code == 1011
        # The gateway's reservation for the next response arrives a little later.
        await asyncio.sleep(0.5)
        await call.write(relay_pb2.RealtimeUp(next_request_id="rt-half-close-2"))
        assert not call.done()
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
    finally:
        await relay.close()


async def test_gateway_shutdown_mid_response_loses_no_charge(
    stack: Any,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    realtime: Realtime,
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    """A gateway told to stop (SIGTERM) while a response streams: the client's socket is
    closed, the response finishes upstream and is billed its usage before the gateway exits."""
    model = alias("rt-stop")
    await channel(pg, secret_key, realtime, model)
    realtime.sim.delta_delay = 0.05
    gw = extra_gateway()
    url = gw.url.replace("http", "ws") + f"/v1/realtime?model={model}"
    words = " ".join(f"w{n}" for n in range(20))
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {tenant.key}"}
    ) as ws:
        assert '"session.created"' in str(await ws.recv())
        await ws.send(user_text(words))
        await ws.send(TEXT_RESPONSE)
        while '"response.output_text.delta"' not in str(await ws.recv()):
            pass
        await asyncio.to_thread(gw.stop)
    rows = await wait_rows(pg, tenant.token_id, 2)
    charged = [r for r in rows if r["prompt_tokens"] and r["status_code"] == 200]
    usage = realtime.sim.responses[-1]["usage"]
    assert [r["completion_tokens"] for r in charged] == [usage["output_tokens"]]
    assert charged[0]["quota"] == expected_quota(model, usage)


async def test_refusals_before_and_at_open(
    stack: Any, tenant: Tenant, pg: asyncpg.Pool, secret_key: str
) -> None:
    """An unknown model is refused before any channel is tried; a channel whose provider
    cannot be reached ends the session with an error event, and its reservation is settled
    by a row of its own (status 502, nothing charged)."""
    base = stack.gateway_url.replace("http", "ws") + "/v1/realtime?model="
    headers = {"Authorization": f"Bearer {tenant.key}"}
    async with websockets.connect(base + "no-such-model", additional_headers=headers) as ws:
        first = str(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert '"model_not_found"' in first
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    model = alias("rt-dead")
    await create_mapped_channel(
        pg,
        secret_key,
        type=OPENAI,
        name="dead",
        key=SIM_KEY,
        base_url="http://127.0.0.1:9",  # discard port: nothing listens
        models={model: MODEL},
    )
    async with websockets.connect(base + model, additional_headers=headers) as ws:
        first = str(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert '"type":"error"' in first and '"session.created"' not in first
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    rows = await wait_rows(pg, tenant.token_id, 1)
    assert [(r["status_code"], r["quota"]) for r in rows] == [(502, 0)]


async def test_server_vad_response_cut_at_its_bound(
    stack: Any, pg: asyncpg.Pool, secret_key: str, realtime: Realtime
) -> None:
    """A response the provider's turn detection starts (no response.create to carry a
    limit) is cancelled once its output reaches what its reservation covers; the client
    never sees the gateway's own cancel, and the row is what the provider reported."""
    model = "gpt-4o-mini-realtime-preview"
    await channel(pg, secret_key, realtime, model, upstream=model)
    realtime.sim.delta_delay = 0.2
    token = await admin_writes.create_token(pg, user_id=1, name="rt-vad", remain_quota=40)
    url = stack.gateway_url.replace("http", "ws") + f"/v1/realtime?model={model}"
    seen: list[dict[str, Any]] = []
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token.key}"}
    ) as ws:
        assert '"session.created"' in str(await ws.recv())
        audio = base64.b64encode(bytes(9_600)).decode()
        await ws.send(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode())
        await ws.send('{"type":"input_audio_buffer.commit"}')
        while True:
            seen.append(orjson.loads(await ws.recv()))
            if seen[-1]["type"] == "response.done":
                break
    assert seen[-1]["response"]["status"] == "cancelled"
    assert not [e for e in seen if e["type"] == "error"]
    usage = seen[-1]["response"]["usage"]
    # Uncut, the answer ("Heard 200 ms of audio") is 10 audio tokens.
    assert usage["output_token_details"]["audio_tokens"] < 10
    rows = await wait_rows(pg, token.id, 1)
    charged = [r for r in rows if r["prompt_tokens"]]
    assert [r["quota"] for r in charged] == [expected_quota(model, usage)]


async def test_gateway_killed_mid_response_is_billed_by_the_relays_record(
    stack: Any,
    tenant: Tenant,
    pg: asyncpg.Pool,
    secret_key: str,
    realtime: Realtime,
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    """A gateway SIGKILLed while a response streams: the relay cancels the response upstream,
    records the usage its `response.done` reports next to the reservation, and billing's
    sweeper charges exactly that (no estimate, no reservation-sized charge)."""
    model = alias("rt-kill")
    await channel(pg, secret_key, realtime, model)
    realtime.sim.delta_delay = 0.2
    gw = extra_gateway()
    url = gw.url.replace("http", "ws") + f"/v1/realtime?model={model}"
    words = " ".join(f"w{n}" for n in range(40))
    with contextlib.suppress(websockets.ConnectionClosed):
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {tenant.key}"}
        ) as ws:
            assert '"session.created"' in str(await ws.recv())
            await ws.send(user_text(words))
            await ws.send(TEXT_RESPONSE)
            while '"response.output_text.delta"' not in str(await ws.recv()):
                pass
            gw.proc.kill()
            gw.proc.wait(10)
            await ws.recv()
    rows = await wait_rows_for(pg, tenant.token_id, lambda r: r["prompt_tokens"] > 0, 120)
    answered = realtime.sim.responses[-1]
    assert answered["status"] == "cancelled"
    usage = answered["usage"]
    assert [(r["completion_tokens"], r["quota"]) for r in rows] == [
        (usage["output_tokens"], expected_quota(model, usage))
    ]


async def wait_rows_for(
    pg: asyncpg.Pool, token_id: int, keep: Callable[[asyncpg.Record], bool], within: float
) -> list[asyncpg.Record]:
    for _ in range(int(within * 2)):
        rows = [
            r
            for r in await pg.fetch("SELECT * FROM logs WHERE token_id = $1 ORDER BY id", token_id)
            if keep(r)
        ]
        if rows:
            return rows
        await asyncio.sleep(0.5)
    raise AssertionError("no ledger row")
