"""The life of one relayed call: authorize, try the candidate channels, answer, publish usage.

A call is retried on the next candidate only while nothing has reached the client yet. Every
authorized call ends in exactly one usage event, however it ends (success, error, client gone).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import grpc
import orjson
from starlette.responses import Response

from unigate import errors, telemetry
from unigate.charge import quota_of
from unigate.grpc_mux import (
    RELAY_CALL,
    RELAY_CALL_WIRE,
    RELAY_STREAM,
    STREAM_WIRE,
    MuxClient,
    MuxError,
    MuxFailed,
    MuxStream,
    MuxStreamClient,
)
from unigate.namespace import USAGE_SCHEMA_VERSION
from unigate.output_bound import GENERATING
from unigate.settings import relay_for
from unigate.terminal_frames import terminal_at
from unigate.tokens import counted_usage, sse_payloads, streamed_text
from unigate.v1 import auth_pb2, auth_pb2_grpc, common_pb2, events_pb2, relay_pb2, relay_pb2_grpc
from unigate_gateway import metrics
from unigate_gateway.content_capture import ContentPublisher
from unigate_gateway.error_shapes import error_frame, error_json
from unigate_gateway.publisher import UsagePublisher
from unigate_gateway.ratelimit_headers import rate_limit_headers
from unigate_gateway.relayed_stream import RelayedStream
from unigate_gateway.requests import ParsedCall
from unigate_gateway.responses_api import ResponsesTurn, final_response
from unigate_gateway.spares import SparePools

log = logging.getLogger(__name__)

# A body this large goes as a call of its own: on a shared stream it would hold up every call
# queued behind it while it is sent.
MAX_MULTIPLEXED_BODY = 256 * 1024
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CLIENT_CLOSED = 499
# Set when unigate injected or lowered the request's output limit (what its payer affords).
MAX_TOKENS_HEADER = "x-unigate-max-tokens"
T = TypeVar("T")
# A streaming relay call: multiplexed on a StreamMany lane, or a Stream call of its own.
RelayStream: TypeAlias = (
    "MuxStream[relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk]"
    " | grpc.aio.UnaryStreamCall[relay_pb2.RelayRequest, relay_pb2.RelayChunk]"
)
# The endpoints a hot key may be served from spare reservations on (auth issues spares for
# text generation priced per token only; a realtime session reserves per response).
SPARE_ENDPOINTS = frozenset(GENERATING)


def reservation_of(auth: auth_pb2.AuthorizeResponse) -> dict[str, Any]:
    """The fields of a relay request that name its reservation: the relay records the call's
    usage in the reservation's Redis hash, which is bound to the install and lives in the
    user's Redis Cluster slot. Every builder of a relay request takes them from here."""
    return {"reservation_id": auth.reservation_id, "install": auth.install, "user_id": auth.user_id}


def error_response(err: errors.ClientFacingError, request_id: str, endpoint: str = "") -> Response:
    status, body = error_json(err, endpoint)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={**err.headers, "X-Request-Id": request_id},
    )


@dataclass(slots=True)
class CallRecord:
    """What the usage event will say about a call; filled in as the call goes."""

    request_id: str
    call: ParsedCall
    client_ip: str
    auth: auth_pb2.AuthorizeResponse
    started: float = field(default_factory=time.perf_counter)
    channel: auth_pb2.ChannelCandidate | None = None
    tried: list[int] = field(default_factory=list)
    usage: common_pb2.Usage = field(default_factory=common_pb2.Usage)
    status: int = 0
    error_code: str = ""
    first_token_ms: int = 0
    # Stream bytes sent so far: counted only if the client leaves before the relay's end.
    forwarded: list[bytes] = field(default_factory=list)
    # The span of the current upstream attempt (only when tracing).
    attempt: telemetry.Span | None = None
    # The id the client sent (X-Request-Id / X-Client-Request-Id), recorded beside ours.
    client_request_id: str = ""
    # Responses API calls: the stored conversation it continues, and whether to store it.
    turn: ResponsesTurn | None = None
    # Content logging only (auth.log_content): the key to redact, the answer's body.
    api_key: str = ""
    response_body: bytes = b""


@dataclass(frozen=True, slots=True)
class RelayClient:
    """The gateway's way to one relay address: large bodies as gRPC calls of their own,
    every other call multiplexed, unary ones on the relay's CallMany streams, streaming ones
    on its StreamMany streams."""

    stub: relay_pb2_grpc.RelayServiceStub
    many: MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult]
    streams: MuxStreamClient[
        relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
    ]

    @classmethod
    def over(cls, channel: grpc.aio.Channel, lanes: int) -> RelayClient:
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        return cls(
            stub,
            MuxClient(stub.CallMany, RELAY_CALL_WIRE, method=RELAY_CALL, lanes=lanes),
            MuxStreamClient(
                stub.StreamMany,
                relay_pb2.RelayStreamUp,
                STREAM_WIRE,
                method=RELAY_STREAM,
                lanes=lanes,
            ),
        )

    async def close(self) -> None:
        """Let the calls in flight end, then close the streams."""
        await asyncio.gather(self.many.close(), self.streams.close())


class Proxy:
    def __init__(
        self,
        auth: auth_pb2_grpc.AuthServiceStub,
        authorizer: MuxClient[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse],
        relays: dict[str, RelayClient],
        publisher: UsagePublisher,
        *,
        retry_times: int,
        authorize_timeout: float,
        relay_timeout: float,
        gateway_id: str = "",
        content: ContentPublisher | None = None,
        spares: SparePools | None = None,
    ) -> None:
        self._auth = auth
        # A hot key's requests are served from spare reservations (None: always Authorize).
        self._spares = spares
        if spares is not None:
            spares.refill = self._refill_spares
        self._content = content
        # Sent with every Authorize: the reservation names the gateway that holds it.
        self._gateway_id = gateway_id
        self._authorizer = authorizer
        self._relays = relays
        self._publisher = publisher
        self._retry_times = retry_times
        self._authorize_timeout = authorize_timeout
        self._relay_timeout = relay_timeout
        self._releases: set[asyncio.Task[None]] = set()

    async def authorize(
        self, api_key: str, call: ParsedCall, client_ip: str, request_id: str
    ) -> auth_pb2.AuthorizeResponse:
        request = auth_pb2.AuthorizeRequest(
            api_key=api_key,
            model=call.model,
            client_ip=client_ip,
            request_id=request_id,
            endpoint=call.endpoint,
            stream=call.stream,
            estimated_prompt_tokens=call.estimated_prompt_tokens,
            max_tokens=call.max_tokens,
            estimated_units=call.estimated_units,
            price_variant=call.price_variant,
            gateway_id=self._gateway_id,
            long_cache_writes=call.long_cache_writes,
        )
        spares = self._spares if call.endpoint in SPARE_ENDPOINTS else None
        key = (api_key, call.model, call.endpoint)
        if spares is not None:
            spares.note(key)
            local = await spares.take(key, request)
            if local is not None:
                return local
            request.spares_wanted = spares.wanted(key)
        try:
            decision = await self._ask(request, key if spares is not None else None)
        except MuxError as exc:
            log.error("authorize failed: %s", exc)
            raise errors.ServiceUnavailable(
                "The gateway could not check your API key right now; please retry."
            ) from None
        if not decision.allowed:
            err = errors.ClientFacingError.from_proto(decision.error)
            if decision.HasField("rate_limits"):
                err.headers = rate_limit_headers(decision.rate_limits)
            raise err
        return decision

    async def _refill_spares(
        self, key: tuple[str, str, str], ask: auth_pb2.AuthorizeRequest
    ) -> None:
        """A hot key's next pool, asked for in the background (``spares_only``) while the
        current one still serves. A refused key's pool goes at once: its next request hears
        auth's refusal."""
        try:
            decision = await self._ask(ask, key)
        except Exception as exc:  # a background task: nobody else would hear of it
            log.warning("could not refill spare reservations: %r", exc)
            return  # the pool runs dry and its key's requests go to auth
        if not decision.allowed and self._spares is not None:
            self._spares.forget(key)

    async def _ask(
        self, request: auth_pb2.AuthorizeRequest, key: tuple[str, str, str] | None
    ) -> auth_pb2.AuthorizeResponse:
        """One ``Authorize``. For a key served from spares (``key``), the asking for spares
        ends with it, whatever it returned, and the spares it brings become the key's pool
        (unless a broadcast came meanwhile)."""
        spares = self._spares if key is not None else None
        generation = spares.generation if spares is not None else 0
        sent_at = time.monotonic()
        try:
            decision = await self._authorizer.call(request, self._authorize_timeout)
        finally:
            if spares is not None and key is not None and request.spares_wanted:
                spares.asked(key)
        if spares is not None and key is not None and decision.HasField("spares"):
            spares.keep(key, decision, sent_at, generation)
        return decision

    async def handle(
        self,
        api_key: str,
        call: ParsedCall,
        client_ip: str,
        request_id: str,
        client_request_id: str = "",
        turn: ResponsesTurn | None = None,
    ) -> Response:
        started = time.perf_counter()
        decision = await self.authorize(api_key, call, client_ip, request_id)
        record = CallRecord(request_id, call, client_ip, decision, started)
        record.client_request_id = client_request_id
        record.turn = turn
        if decision.log_content:
            record.api_key = api_key
        if call.stream:
            response = await self._stream(record)
        else:
            try:
                response = await self._unary(record)
            finally:
                release = self._publish(record)
            if release is not None:
                # The client's next request must find the rest of a tight balance free.
                await release
        if decision.HasField("rate_limits"):
            response.headers.update(rate_limit_headers(decision.rate_limits))
        if len(record.tried) > 1 and self._spares is not None:
            # A channel failed over: the key's next requests go through auth, whose ordering
            # knows the channel's health (cooling, half-open probes).
            self._spares.forget((api_key, call.model, call.endpoint))
        bound = decision.max_output_tokens
        if bound and (not call.max_tokens or bound < call.max_tokens):
            # The output limit the request went upstream with, where it is not the client's.
            response.headers[MAX_TOKENS_HEADER] = str(bound)
        return response

    def candidates(self, decision: auth_pb2.AuthorizeResponse) -> list[auth_pb2.ChannelCandidate]:
        """The channels a call may try, in order (a realtime session's too)."""
        retries = decision.retry_times if decision.HasField("retry_times") else self._retry_times
        return list(decision.candidates)[: 1 + max(retries, 0)]

    def relay(self, family: str) -> RelayClient | None:
        return relay_for(self._relays, family)

    def publish(self, record: CallRecord) -> None:
        """Hand a finished call's usage event to the publisher (a realtime response's)."""
        self._publish(record)

    def _candidates(self, record: CallRecord) -> list[auth_pb2.ChannelCandidate]:
        # The RetryTimes option, when an operator set one, wins over this gateway's setting.
        retries = (
            record.auth.retry_times if record.auth.HasField("retry_times") else self._retry_times
        )
        candidates = list(record.auth.candidates)
        previous = record.turn.channel_id if record.turn is not None else 0
        if previous:
            # A conversation goes back to the channel that produced its previous response
            # (a provider that keeps state continues it there); the order is kept otherwise.
            candidates.sort(key=lambda c: c.channel_id != previous)
        return candidates[: 1 + max(retries, 0)]

    def _relay_request(
        self, record: CallRecord, cand: auth_pb2.ChannelCandidate
    ) -> relay_pb2.RelayRequest:
        turn = record.turn
        return relay_pb2.RelayRequest(
            responses_history=turn.history if turn is not None else b"",
            responses_channel_id=turn.channel_id if turn is not None else 0,
            request_id=record.request_id,
            endpoint=record.call.endpoint,
            channel_id=cand.channel_id,
            channel_type=cand.channel_type,
            config_version=cand.config_version,
            upstream_model=cand.upstream_model,
            body=record.call.body,
            stream=record.call.stream,
            include_usage=record.call.include_usage,
            model=record.call.model,
            content_type=record.call.content_type,
            max_output_tokens=record.auth.max_output_tokens,
            **reservation_of(record.auth),
        )

    def _no_relay_error(self, cand: auth_pb2.ChannelCandidate) -> relay_pb2.RelayError:
        return relay_pb2.RelayError(
            error=errors.ServiceUnavailable(
                f"No relay is configured for provider family `{cand.family}`."
            ).to_proto(),
            retryable=True,
        )

    def _rpc_error(self, exc: grpc.aio.AioRpcError | MuxError) -> relay_pb2.RelayError:
        if isinstance(exc, MuxError):
            log.error("relay call failed: %s", exc)
            # A relay that failed serving the call (a status other than OK, once): as final
            # as UNKNOWN was; a lost stream or a timeout may go to another channel.
            retryable = not isinstance(exc, MuxFailed)
        else:
            log.error("relay call failed: %s %s", exc.code(), exc.details())
            retryable = exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        return relay_pb2.RelayError(
            error=errors.ServiceUnavailable(
                "The relay for this channel is unavailable."
            ).to_proto(),
            retryable=retryable,
        )

    async def _relay_call(
        self, relay: RelayClient, request: relay_pb2.RelayRequest
    ) -> relay_pb2.RelayResult:
        if len(request.body) <= MAX_MULTIPLEXED_BODY:
            return await relay.many.call(request, self._relay_timeout)
        return await relay.stub.Call(request, timeout=self._relay_timeout)

    def _relay_stream(self, relay: RelayClient, request: relay_pb2.RelayRequest) -> RelayStream:
        """Start a streaming relay call (in the current context: the attempt's span is the
        parent of the call's)."""
        if len(request.body) <= MAX_MULTIPLEXED_BODY:
            return relay.streams.open(request, self._relay_timeout)
        return relay.stub.Stream(request, timeout=self._relay_timeout)

    def _start_attempt(
        self, record: CallRecord, cand: auth_pb2.ChannelCandidate
    ) -> Token[telemetry.Context]:
        """Start the attempt's span; returns the context the relay is called in."""
        record.attempt, ctx = telemetry.start_attempt(
            endpoint=record.call.endpoint,
            type_id=cand.channel_type,
            model=cand.upstream_model or record.call.model,
            channel_id=cand.channel_id,
            retry=len(record.tried) - 1,
            request_body=record.call.body,
        )
        return telemetry.attach(ctx)

    def _end_attempt(
        self, record: CallRecord, last: relay_pb2.RelayError | None, response: bytes = b""
    ) -> None:
        if record.attempt is not None:
            telemetry.end_genai_span(
                record.attempt,
                usage=record.usage,
                error_code=(last.error.code or last.error.type or "error") if last else "",
                retryable=last.retryable if last else None,
                response=response,
            )
            record.attempt = None

    async def _unary(self, record: CallRecord) -> Response:
        last: relay_pb2.RelayError | None = None
        for cand in self._candidates(record):
            record.channel = cand
            record.tried.append(cand.channel_id)
            relay = relay_for(self._relays, cand.family)
            if relay is None:
                last = self._no_relay_error(cand)
                continue
            token = self._start_attempt(record, cand) if telemetry.recording() else None
            try:
                result = await self._relay_call(relay, self._relay_request(record, cand))
            except (grpc.aio.AioRpcError, MuxError) as exc:
                last = self._rpc_error(exc)
            else:
                if not result.HasField("error"):
                    record.usage = result.usage
                    record.status = result.http_status or 200
                    if record.turn is not None and record.turn.store:
                        await self._save_response(record, result.body)
                    if token is not None:
                        telemetry.detach(token)
                        self._end_attempt(record, None, result.body)
                    if record.api_key:
                        record.response_body = result.body
                    return Response(
                        result.body,
                        status_code=record.status,
                        media_type=result.content_type or "application/json",
                        headers={"X-Request-Id": record.request_id},
                    )
                last = result.error
                if result.HasField("usage"):
                    record.usage = result.usage
            if token is not None:
                telemetry.detach(token)
                self._end_attempt(record, last)
            if not last.retryable:
                break
            metrics.retried(last.error.code or "error")
        return self._fail(record, last)

    def _fail(self, record: CallRecord, last: relay_pb2.RelayError | None) -> Response:
        err = (
            errors.ClientFacingError.from_proto(last.error)
            if last is not None
            else errors.ModelNotAvailable("No channel could serve this request.")
        )
        record.status = err.status
        record.error_code = err.code or err.type
        response = error_response(err, record.request_id, record.call.endpoint)
        if record.api_key:
            record.response_body = bytes(response.body)
        return response

    async def _stream(self, record: CallRecord) -> Response:
        last: relay_pb2.RelayError | None = None
        for cand in self._candidates(record):
            record.channel = cand
            record.tried.append(cand.channel_id)
            relay = relay_for(self._relays, cand.family)
            if relay is None:
                last = self._no_relay_error(cand)
                continue
            token = self._start_attempt(record, cand) if telemetry.recording() else None
            # The call's client span (the interceptor's task for a call of its own) takes the
            # context here.
            call = self._relay_stream(relay, self._relay_request(record, cand))
            if token is not None:
                telemetry.detach(token)
            try:
                first = await call.read()
                # Usage reported ahead of any data commits nothing: failover is still open.
                reported = False
                while isinstance(first, relay_pb2.RelayChunk) and first.HasField("usage"):
                    record.usage, reported = first.usage, True
                    first = await call.read()
            except (grpc.aio.AioRpcError, MuxError) as exc:
                last = self._rpc_error(exc)
            else:
                if not isinstance(first, relay_pb2.RelayChunk):  # grpc.aio.EOF
                    last = relay_pb2.RelayError(
                        error=errors.UpstreamError("The relay ended the stream early.").to_proto(),
                        retryable=True,
                    )
                elif first.HasField("end") and first.end.HasField("error"):
                    last = first.end.error
                    if first.end.HasField("usage"):
                        record.usage = first.end.usage
                else:
                    record.status = 200
                    metrics.first_token(record.call.endpoint, time.perf_counter() - record.started)
                    if record.attempt is not None:
                        telemetry.note_response(record.attempt, first.data)
                    return RelayedStream(
                        self._forward(record, call, first, reported),
                        media_type="text/event-stream",
                        headers={**SSE_HEADERS, "X-Request-Id": record.request_id},
                    )
            call.cancel()
            self._end_attempt(record, last)
            if not last.retryable:
                break
            metrics.retried(last.error.code or "error")
        try:
            response = self._fail(record, last)
        finally:
            release = self._publish(record)
        if release is not None:
            await release
        return response

    async def _forward(
        self,
        record: CallRecord,
        call: RelayStream,
        first: relay_pb2.RelayChunk,
        reported: bool,
    ) -> AsyncIterator[bytes]:
        """Pass the relay's SSE bytes to the client; after the first byte, errors become an
        error event in the stream (never a retry).

        The relay holds the stream's terminal frame (``[DONE]``, ``message_stop``, the
        Responses API's final event) back and sends it in its ``StreamEnd``, after the usage:
        the record is complete before the client can read the end, so a client that closes
        the response right there (as the SDKs do) is billed the provider's usage, status 200.
        Nothing is ever sent after a terminal frame."""
        chunk: relay_pb2.RelayChunk | object = first
        finished = False
        # `reported`: whether record.usage is the provider's own (sent ahead of the end).
        # Whether the client has been sent its terminal frame: nothing may follow it.
        terminated = False
        try:
            while True:
                if not isinstance(chunk, relay_pb2.RelayChunk):  # grpc.aio.EOF
                    raise errors.UpstreamError("The relay ended the stream early.")
                kind = chunk.WhichOneof("kind")
                if kind == "usage":
                    record.usage, reported = chunk.usage, True
                elif kind == "end":
                    end = chunk.end
                    # The end's usage is the last word; an end without any (a failure that
                    # produced nothing) keeps what was reported ahead.
                    if end.HasField("usage") or not reported:
                        record.usage, reported = end.usage, True
                    record.first_token_ms = end.first_token_ms
                    finished = True
                    if end.tail:
                        if record.turn is not None and record.turn.store:
                            # Saved before the client can read the end and ask for it.
                            stored = final_response(end.tail)
                            if stored is not None:
                                await self._save_response(record, stored)
                        # Recorded above, so a client that leaves at this frame changes nothing.
                        terminated = True
                        yield end.tail
                    elif end.HasField("error") and not terminated:
                        err = errors.ClientFacingError.from_proto(end.error.error)
                        record.status = err.status
                        record.error_code = err.code or err.type
                        yield error_frame(err, record.call.endpoint)
                    return
                else:
                    record.forwarded.append(chunk.data)
                    # A relay that does not hold the frame back (mid-upgrade) may pass it here.
                    terminated = terminated or terminal_at(record.call.endpoint, chunk.data) >= 0
                    yield chunk.data
                chunk = await call.read()
        except (grpc.aio.AioRpcError, MuxError) as exc:
            err = errors.UpstreamError("The relay failed mid-stream.")
            if isinstance(exc, MuxError):
                log.error("relay stream failed: %s", exc)
            else:
                log.error("relay stream failed: %s %s", exc.code(), exc.details())
            finished = self._broken(record, err, reported, terminated)
            if not terminated:
                yield error_frame(err, record.call.endpoint)
        except errors.ClientFacingError as err:
            finished = self._broken(record, err, reported, terminated)
            if not terminated:
                yield error_frame(err, record.call.endpoint)
        finally:
            if not finished:
                # The client went away: stop the upstream call now.
                record.status = CLIENT_CLOSED
                record.error_code = "client_closed"
                call.cancel()
                if not reported:
                    self._estimate(record)
            if record.attempt is not None:
                # Ends the attempt span: its outcome is the stream's, client_closed included.
                telemetry.end_genai_span(
                    record.attempt,
                    usage=record.usage,
                    error_code=record.error_code,
                    outcome=record.error_code or "success",
                )
                record.attempt = None
            self._publish(record)

    def _broken(
        self, record: CallRecord, err: errors.ClientFacingError, reported: bool, terminated: bool
    ) -> bool:
        """The relay's stream broke after the first byte: the row says what the client saw
        (an error, unless it already had the terminal frame), with the provider's usage if
        it had come, else what was sent, estimated."""
        if not terminated:
            record.status, record.error_code = err.status, err.code or ""
        if not reported:
            self._estimate(record)
        return True

    def _estimate(self, record: CallRecord) -> None:
        """Bill what was generated up to the moment the stream broke off, counted locally."""
        model = record.channel.upstream_model if record.channel else ""
        record.usage = counted_usage(
            record.call.endpoint,
            record.call.body,
            model or record.call.model,
            streamed_text(sse_payloads(b"".join(record.forwarded))),
        )

    def _publish(self, record: CallRecord) -> asyncio.Task[None] | None:
        """Hand the call's usage event to the publisher; returns the early release of its
        reservation, when auth asked for one."""
        auth = record.auth
        p = auth.pricing
        u = record.usage
        quota = quota_of(p, u)
        release = None
        if auth.release_early:
            release = asyncio.get_running_loop().create_task(self._release(auth, quota))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)
        elapsed = time.perf_counter() - record.started
        channel_id = record.channel.channel_id if record.channel else 0
        metrics.request_done(
            record.call.endpoint, record.call.model, channel_id, record.status, elapsed
        )
        if auth.log_content and self._content is not None:
            # A stream's answer is what was forwarded to the client.
            answer = record.response_body or b"".join(record.forwarded)
            self._content.capture(auth, record.request_id, record.api_key, record.call.body, answer)
        self._publisher.publish(
            events_pb2.UsageEvent(
                schema_version=USAGE_SCHEMA_VERSION,
                request_id=record.request_id,
                reservation_id=auth.reservation_id,
                reserved_quota=auth.reserved_quota,
                user_id=auth.user_id,
                token_id=auth.token_id,
                token_name=auth.token_name,
                group=auth.group,
                channel_id=record.channel.channel_id if record.channel else 0,
                model=record.call.model,
                upstream_model=record.channel.upstream_model if record.channel else "",
                endpoint=record.call.endpoint,
                usage=u,
                pricing=p,
                quota=quota,
                stream=record.call.stream,
                status_code=record.status,
                error_code=record.error_code,
                latency_ms=int(elapsed * 1000),
                first_token_ms=record.first_token_ms,
                client_ip=record.client_ip,
                channels_tried=record.tried,
                created_at_ms=int(time.time() * 1000),
                client_request_id=record.client_request_id,
            )
        )
        return release

    async def _release(self, auth: auth_pb2.AuthorizeResponse, quota: int) -> None:
        """Tell auth the real cost of a request the balance limited, so the rest of its
        reservation is spendable at once; billing's settlement follows either way."""
        request = auth_pb2.ReleaseRequest(
            reservation_id=auth.reservation_id,
            token_id=auth.token_id,
            user_id=auth.user_id,
            quota=quota,
        )
        try:
            await self._auth.Release(request, timeout=self._authorize_timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not release a reservation early: %s", exc.code())

    async def _save_response(self, record: CallRecord, body: bytes) -> None:
        """Store a Responses API answer under the key's user (never failing the call: the
        client has its answer; only a later retrieve would miss it)."""
        turn = record.turn
        try:
            response = orjson.loads(body)
        except orjson.JSONDecodeError:
            response = None
        if turn is None or not isinstance(response, dict) or not response.get("id"):
            return
        request = auth_pb2.SaveStoredResponseRequest(
            id=str(response["id"]),
            user_id=record.auth.user_id,
            token_id=record.auth.token_id,
            channel_id=record.channel.channel_id if record.channel else 0,
            model=record.call.model,
            previous_response_id=turn.previous_response_id,
            input_items=turn.input_items,
            response=body,
        )
        try:
            await self._auth.SaveStoredResponse(request, timeout=self._authorize_timeout)
        except grpc.aio.AioRpcError as exc:
            log.error("could not store response %s: %s", response["id"], exc.code())

    async def stored_response(
        self, api_key: str, client_ip: str, response_id: str, with_history: bool
    ) -> auth_pb2.StoredResponseReply | None:
        """The key's user's stored response ``response_id`` (None: none such)."""
        request = auth_pb2.StoredResponseRequest(
            api_key=api_key, client_ip=client_ip, id=response_id, with_history=with_history
        )
        resp = await self._ask_auth(
            self._auth.GetStoredResponse(request, timeout=self._authorize_timeout)
        )
        if not resp.allowed:
            raise errors.ClientFacingError.from_proto(resp.error)
        return resp if resp.found else None

    async def delete_stored_response(self, api_key: str, client_ip: str, response_id: str) -> bool:
        """Delete the key's user's stored response ``response_id`` (False: none such)."""
        request = auth_pb2.StoredResponseRequest(
            api_key=api_key, client_ip=client_ip, id=response_id
        )
        resp = await self._ask_auth(
            self._auth.DeleteStoredResponse(request, timeout=self._authorize_timeout)
        )
        if not resp.allowed:
            raise errors.ClientFacingError.from_proto(resp.error)
        return resp.found

    async def message_batch(
        self, request: auth_pb2.MessageBatchRequest
    ) -> auth_pb2.MessageBatchReply:
        """A Message Batches call, which auth makes (unigate_auth.message_batches): the
        upstream calls of a batch may take a while, so the relay's timeout bounds it."""
        return await self._ask_auth(
            self._auth.MessageBatchCall(request, timeout=self._relay_timeout)
        )

    async def list_models(self, api_key: str, client_ip: str) -> list[str]:
        request = auth_pb2.ListModelsRequest(api_key=api_key, client_ip=client_ip)
        resp = await self._ask_auth(self._auth.ListModels(request, timeout=self._authorize_timeout))
        if not resp.allowed:
            raise errors.ClientFacingError.from_proto(resp.error)
        return list(resp.models)

    async def key_info(self, api_key: str, client_ip: str) -> auth_pb2.KeyInfo:
        request = auth_pb2.ListModelsRequest(api_key=api_key, client_ip=client_ip)
        resp = await self._ask_auth(self._auth.GetKeyInfo(request, timeout=self._authorize_timeout))
        if not resp.allowed:
            raise errors.ClientFacingError.from_proto(resp.error)
        return resp

    async def _ask_auth(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            log.error("auth call failed: %s %s", exc.code(), exc.details())
            raise errors.ServiceUnavailable(
                "The gateway could not check your API key right now; please retry."
            ) from None
