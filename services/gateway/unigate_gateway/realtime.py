"""``/v1/realtime``: an OpenAI Realtime API session (WebSocket) relayed to the provider
through the relay's ``Realtime`` RPC.

Billing is per response, each its own request: before a response can start, the session
holds a reservation for it, authorized exactly as an HTTP call (key, model, IP, rate limits,
quota). A ``response.created`` from the provider binds the response to that reservation and
the next one is asked for at once; its ``response.done`` carries the provider's usage (text
and audio, cached apart) and the gateway publishes one usage event, one ledger row, for it.
A client event that can start a response (``response.create``, ``input_audio_buffer.commit``)
waits for the next reservation; if auth refuses it (no quota left), the client gets a realtime
``error`` event and the socket is closed with code 3000, after the responses in flight end.
A reservation never used is settled at zero when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from unigate import errors
from unigate.request_ids import new_request_id
from unigate.tokenizer.counting import count_text
from unigate.v1 import auth_pb2, common_pb2, relay_pb2
from unigate_gateway.proxy import CallRecord, Proxy, reservation_of
from unigate_gateway.requests import ParsedCall

log = logging.getLogger(__name__)

ENDPOINT = "realtime"
INSECURE_KEY_PREFIX = "openai-insecure-api-key."
# The most output one realtime response may produce (every realtime model's published limit).
RESPONSE_OUTPUT_LIMIT = 4_096
# OpenAI closes a refused session with this code and "<type>.<code>" as the reason.
CLOSE_REFUSED = 3000
# Events that may start a response: they wait until the next response is reserved.
STARTS_RESPONSE = frozenset({"response.create", "input_audio_buffer.commit"})
# A client that leaves mid-response: how long its responses may take to report their usage.
DRAIN_SECONDS = 15.0
# 100 ms of 24 kHz PCM16 is one input audio token: a conservative reservation for appends.
AUDIO_BYTES_PER_TOKEN = 4_800
# Output audio: one token per 50 ms of 24 kHz PCM16 (an estimate only when usage is lost).
OUTPUT_AUDIO_BYTES_PER_TOKEN = 2_400
TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    }
)
AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
# The event_id of the gateway's own events: the provider's errors about them are not the
# client's to see.
OWN_EVENT_PREFIX = "unigate_cancel_"


def error_event(err: errors.ClientFacingError) -> str:
    return orjson.dumps(
        {
            "type": "error",
            "event_id": f"event_{new_request_id()}",
            "error": {
                "type": err.type,
                "code": err.code,
                "message": err.message,
                "param": err.param,
                "event_id": None,
            },
        }
    ).decode()


def key_of(ws: WebSocket) -> tuple[str, str | None]:
    """(API key, subprotocol to accept): ``Authorization: Bearer``, else Azure's ``api-key``
    header (the ``AzureOpenAI`` client), else the browser's ``openai-insecure-api-key.<key>``
    subprotocol (answered with ``realtime``)."""
    scheme, _, key = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip(), None
    if azure_key := ws.headers.get("api-key", "").strip():
        return azure_key, None
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    for p in offered:
        if p.startswith(INSECURE_KEY_PREFIX):
            return p[len(INSECURE_KEY_PREFIX) :], "realtime" if "realtime" in offered else p
    return "", None


async def refuse(ws: WebSocket, err: errors.ClientFacingError) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(error_event(err))
        await ws.close(CLOSE_REFUSED, f"{err.type}.{err.code or 'error'}"[:120])


@dataclass
class Produced:
    texts: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    text_tokens: int = 0
    # A response.cancel went up for it (its output reached its reservation's bound).
    cut: bool = False

    @property
    def tokens(self) -> int:
        return self.text_tokens + self.audio_bytes // OUTPUT_AUDIO_BYTES_PER_TOKEN


class Session:
    def __init__(
        self, proxy: Proxy, ws: WebSocket, api_key: str, model: str, ip: str, beta: str
    ) -> None:
        self.proxy, self.ws, self.api_key, self.model, self.ip = proxy, ws, api_key, model, ip
        self.beta = beta
        self.call: grpc.aio.StreamStreamCall[relay_pb2.RealtimeUp, relay_pb2.RealtimeDown]
        self.channel: auth_pb2.ChannelCandidate | None = None
        self.standing: tuple[str, auth_pb2.AuthorizeResponse] | None = None
        self.next_task: asyncio.Task[None] | None = None
        self.refused: errors.ClientFacingError | None = None
        self.last: auth_pb2.AuthorizeResponse | None = None
        self.active: dict[str, CallRecord] = {}
        # Per active response: the text deltas and audio bytes forwarded so far.
        self.produced: dict[str, Produced] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.drained = asyncio.Event()
        self.writing = asyncio.Lock()
        # What the next response's prompt is estimated at: the conversation so far.
        self.context_tokens = 1

    def parsed(self) -> ParsedCall:
        return ParsedCall(
            endpoint=ENDPOINT,
            body=b"",
            model=self.model,
            stream=True,
            include_usage=False,
            max_tokens=RESPONSE_OUTPUT_LIMIT,
            estimated_prompt_tokens=self.context_tokens,
        )

    async def reserve(self) -> tuple[str, auth_pb2.AuthorizeResponse]:
        rid = new_request_id()
        return rid, await self.proxy.authorize(self.api_key, self.parsed(), self.ip, rid)

    async def reserve_next(self) -> None:
        try:
            rid, decision = await self.reserve()
        except errors.ClientFacingError as err:
            self.refused = err
            return
        self.standing, self.last = (rid, decision), decision
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # The relay gone: the session is ending, and this reservation settles at zero.
            await self.write(relay_pb2.RealtimeUp(next_request_id=rid))

    async def write(self, up: relay_pb2.RealtimeUp) -> None:
        async with self.writing:  # one write at a time on a gRPC stream
            await self.call.write(up)

    def record(self, rid: str, decision: auth_pb2.AuthorizeResponse) -> CallRecord:
        rec = CallRecord(rid, self.parsed(), self.ip, decision)
        rec.channel = self.channel
        rec.tried = [self.channel.channel_id] if self.channel else []
        return rec

    async def run(self) -> None:
        try:
            rid, decision = await self.reserve()
        except errors.ClientFacingError as err:
            await refuse(self.ws, err)
            return
        self.last = decision
        self.standing = (rid, decision)
        down: asyncio.Task[None] | None = None
        try:
            if not await self.open(rid, decision):
                return
            down = asyncio.create_task(self.pump_down())
            await self.pump_up()
        finally:
            if down is not None:
                await self.wind_down(down)
            # Whatever happened, every reservation of the session is settled by its row.
            await self.settle_rest()

    async def wind_down(self, down: asyncio.Task[None]) -> None:
        if self.active and not down.done():
            # The client left mid-response: cancel, and wait for the provider's usage.
            with contextlib.suppress(Exception):
                await self.write(relay_pb2.RealtimeUp(event='{"type":"response.cancel"}'))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), DRAIN_SECONDS)
        with contextlib.suppress(Exception):
            await self.call.done_writing()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(down), DRAIN_SECONDS)
        down.cancel()
        self.call.cancel()

    async def open(self, rid: str, decision: auth_pb2.AuthorizeResponse) -> bool:
        last: relay_pb2.RelayError | None = None
        options = orjson.dumps({"openai_beta": self.beta})
        for cand in self.proxy.candidates(decision):
            relay = self.proxy.relay(cand.family)
            if relay is None:
                continue
            self.call = relay.stub.Realtime()
            up = relay_pb2.RealtimeUp(
                open=relay_pb2.RelayRequest(
                    request_id=rid,
                    endpoint=ENDPOINT,
                    channel_id=cand.channel_id,
                    channel_type=cand.channel_type,
                    config_version=cand.config_version,
                    upstream_model=cand.upstream_model,
                    body=options,
                    stream=True,
                    model=self.model,
                    **reservation_of(decision),
                )
            )
            try:
                await self.call.write(up)
                first = await self.call.read()
            except grpc.aio.AioRpcError as exc:
                log.error("realtime relay failed: %s", exc.code())
                last = relay_pb2.RelayError(
                    error=errors.ServiceUnavailable(
                        "The relay for this channel is unavailable."
                    ).to_proto(),
                    retryable=True,
                )
            else:
                if isinstance(first, relay_pb2.RealtimeDown) and first.opened:
                    self.channel = cand
                    return True
                if isinstance(first, relay_pb2.RealtimeDown) and first.HasField("error"):
                    last = first.error
            self.call.cancel()
            if last is not None and not last.retryable:
                break
        err = (
            errors.ClientFacingError.from_proto(last.error)
            if last is not None
            else errors.ModelNotAvailable("No channel could serve this realtime session.")
        )
        rec = self.record(rid, decision)
        rec.status, rec.error_code = err.status, err.code or err.type
        self.standing = None  # settled by this row
        self.proxy.publish(rec)
        await refuse(self.ws, err)
        return False

    async def pump_up(self) -> None:
        while True:
            try:
                text = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            kind, event = "", None
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(text)
                kind = event.get("type", "") if isinstance(event, dict) else ""
            if kind in STARTS_RESPONSE and self.standing is None:
                if self.next_task is not None:
                    await self.next_task
                if self.standing is None and self.refused is None:
                    await self.reserve_next()
                if self.standing is None:
                    await self.close_refused()
                    return
            if isinstance(event, dict):
                self.note_input(kind, event)
                if kind == "response.create" and self.standing is not None:
                    text = self.bounded(event, self.standing[1].max_output_tokens) or text
            try:
                await self.write(relay_pb2.RealtimeUp(event=text))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                return  # the relay is gone: pump_down tells the client

    def bounded(self, event: dict[str, Any], bound: int) -> str | None:
        """``event`` (a ``response.create``) with its output limit lowered to what the
        response's reservation covers, or None when it is within it already. The field is
        the interface's: ``max_output_tokens`` (GA), ``max_response_output_tokens`` (beta)."""
        if not 0 < bound < RESPONSE_OUTPUT_LIMIT:
            return None  # the reservation covers the model's own limit
        response = event.get("response")
        if response is None:
            response = event["response"] = {}
        if not isinstance(response, dict):
            return None  # the provider refuses it as it stands
        name = "max_response_output_tokens" if self.beta else "max_output_tokens"
        asked = response.get(name)
        if isinstance(asked, int) and not isinstance(asked, bool) and 0 < asked <= bound:
            return None
        response[name] = bound
        return orjson.dumps(event).decode()

    def note_input(self, kind: str, event: dict[str, Any]) -> None:
        """Grow the next reservation's prompt estimate by what the client adds."""
        if kind == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
            self.context_tokens += len(event["audio"]) * 3 // 4 // AUDIO_BYTES_PER_TOKEN + 1
        elif kind == "session.update":
            instructions = (event.get("session") or {}).get("instructions")
            if isinstance(instructions, str):
                self.context_tokens += count_text(instructions, self.model)
        elif kind == "conversation.item.create":
            content = (event.get("item") or {}).get("content")
            for part in content if isinstance(content, list) else []:
                if not isinstance(part, dict):
                    continue
                if isinstance(part.get("text"), str):
                    self.context_tokens += count_text(part["text"], self.model)
                if isinstance(part.get("audio"), str):
                    self.context_tokens += len(part["audio"]) * 3 // 4 // AUDIO_BYTES_PER_TOKEN + 1

    async def close_refused(self) -> None:
        err = self.refused or errors.InsufficientQuota("You exceeded your current quota.")
        if self.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), DRAIN_SECONDS)
        await refuse(self.ws, err)

    async def pump_down(self) -> None:
        try:
            while True:
                down = await self.call.read()
                if not isinstance(down, relay_pb2.RealtimeDown):
                    break
                if down.event:
                    await self.on_event(down)
                if down.HasField("error"):
                    await refuse(self.ws, errors.ClientFacingError.from_proto(down.error.error))
                    break
                if down.close_code:
                    code = down.close_code if down.close_code not in (1005, 1006) else 1011
                    with contextlib.suppress(Exception):
                        await self.ws.close(code, down.close_reason[:120])
                    break
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.error("realtime relay stream failed: %s", exc.code())
                await refuse(self.ws, errors.UpstreamError("The relay failed mid-session."))
        finally:
            self.drained.set()

    async def on_event(self, down: relay_pb2.RealtimeDown) -> None:
        text = down.event
        if '"response.created"' in text:
            event = orjson.loads(text)
            if event.get("type") == "response.created":
                await self.bind(str((event.get("response") or {}).get("id", "")))
        if '.delta"' in text and self.active:
            self.note_output(text)
        if OWN_EVENT_PREFIX in text and orjson.loads(text).get("type") == "error":
            return  # the answer to the gateway's own cancel (the response had just ended)
        with contextlib.suppress(Exception):
            await self.ws.send_text(text)
        if down.HasField("usage"):
            event = orjson.loads(text)
            response_id = str((event.get("response") or {}).get("id", ""))
            rec = self.active.pop(response_id, None)
            self.produced.pop(response_id, None)
            if rec is not None:
                self.finish(rec, down.usage, 200)
            u = down.usage
            self.context_tokens = max(u.prompt_tokens + u.completion_tokens, 1)
            if not self.active:
                self.drained.set()

    def note_output(self, text: str) -> None:
        """Keep what a response has produced so far: billed, estimated, if the provider goes
        away before its ``response.done``."""
        event = orjson.loads(text)
        kind = event.get("type", "")
        response_id = str(event.get("response_id", ""))
        produced = self.produced.get(response_id)
        delta = event.get("delta")
        if produced is None or not isinstance(delta, str):
            return
        if kind in TEXT_DELTAS:
            produced.texts.append(delta)
            produced.text_tokens += count_text(delta, self.model)
        elif kind in AUDIO_DELTAS:
            produced.audio_bytes += len(delta) * 3 // 4
        rec = self.active.get(response_id)
        bound = rec.auth.max_output_tokens if rec is not None else 0
        if not produced.cut and 0 < bound < RESPONSE_OUTPUT_LIMIT and produced.tokens >= bound:
            # A response no response.create limited (the provider's turn detection started
            # it) reached what its reservation covers: stop it, as streams are cut at theirs.
            produced.cut = True
            cancel = orjson.dumps(
                {
                    "type": "response.cancel",
                    "event_id": OWN_EVENT_PREFIX + response_id,
                    "response_id": response_id,
                }
            )
            task = asyncio.create_task(self.write(relay_pb2.RealtimeUp(event=cancel.decode())))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def estimate(self, rec: CallRecord, response_id: str) -> common_pb2.Usage:
        """A broken response's usage: the prompt its reservation was priced on, and the
        output forwarded (text counted with the tokenizer, audio at 50 ms a token)."""
        produced = self.produced.get(response_id) or Produced()
        audio = produced.audio_bytes // OUTPUT_AUDIO_BYTES_PER_TOKEN
        completion = count_text("".join(produced.texts), self.model) + audio
        prompt = rec.call.estimated_prompt_tokens
        return common_pb2.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            audio_completion_tokens=audio,
            estimated=True,
        )

    async def bind(self, response_id: str) -> None:
        if self.standing is None and self.next_task is not None:
            await self.next_task  # a response the server started (its turn detection)
        if self.standing is not None:
            rid, decision = self.standing
            self.standing = None
        else:
            # Refused, yet the provider answers: billed all the same, without a reservation.
            assert self.last is not None
            rid, decision = new_request_id(), auth_pb2.AuthorizeResponse()
            decision.CopyFrom(self.last)
            decision.reservation_id, decision.reserved_quota = "", 0
        self.active[response_id] = self.record(rid, decision)
        self.produced[response_id] = Produced()
        self.drained.clear()
        if self.refused is None:
            self.next_task = asyncio.create_task(self.reserve_next())

    def finish(self, rec: CallRecord, usage: common_pb2.Usage, status: int, code: str = "") -> None:
        rec.usage, rec.status, rec.error_code = usage, status, code
        rec.first_token_ms = int((time.perf_counter() - rec.started) * 1000)
        self.proxy.publish(rec)

    async def settle_rest(self) -> None:
        """The session is over: responses that never reported usage (the provider went
        away) are recorded as broken, and the unused reservation settles at zero."""
        for response_id, rec in self.active.items():
            self.finish(rec, self.estimate(rec, response_id), 502, "upstream_closed")
        self.active.clear()
        if self.next_task is not None:
            with contextlib.suppress(Exception):
                await self.next_task
        if self.standing is not None:
            rid, decision = self.standing
            self.finish(self.record(rid, decision), common_pb2.Usage(), 499, "unused")
            self.standing = None


def realtime_routes(proxy: Callable[[], Proxy], ip_of: Callable[[WebSocket], str]) -> list[Any]:
    async def handle(ws: WebSocket) -> None:
        api_key, subprotocol = key_of(ws)
        await ws.accept(subprotocol=subprotocol)
        if not api_key:
            await refuse(
                ws,
                errors.AuthenticationFailed(
                    "You didn't provide an API key. You need to provide your API key in an"
                    " Authorization header using Bearer auth"
                    " (i.e. Authorization: Bearer YOUR_KEY).",
                    code="invalid_api_key",
                ),
            )
            return
        # Azure's path names the model as its deployment (the AzureOpenAI client's form).
        model = ws.query_params.get("model") or ws.query_params.get("deployment") or ""
        if not model:
            await refuse(
                ws,
                errors.InvalidRequest("Missing required parameter: 'model'.", param="model"),
            )
            return
        beta = ws.headers.get("openai-beta", "")
        await Session(proxy(), ws, api_key, model, ip_of(ws), beta).run()

    return [WebSocketRoute("/v1/realtime", handle), WebSocketRoute("/openai/realtime", handle)]
