"""Many gRPC calls multiplexed over a few long-lived bidirectional streams ("lanes"): unary
calls (``AuthorizeMany``, ``CallMany``) and server-streaming calls (``StreamMany``).

Why: on a 2-core machine a grpc.aio unary call costs about 0.35 ms round trip and 0.4 ms of CPU
across both ends, while a message on an open stream costs about 0.15 ms and half the CPU. The
gateway makes two such calls per request (auth, then the relay), so this is the largest cost
its path can shed without changing what the services say to each other. A streaming call of
its own costs more still before its first message (the call's setup, its metadata and
trace headers, a task on each end): measured in ``make bench-ttft``.

The wire contract, unary (``AuthorizeMany``, ``CallMany``): the client numbers each request
with a ``call_id`` and the server answers each with its own ``call_id``, in whatever order the
calls finish. The per-request trace context travels in the request's ``trace_context`` map,
since a stream's metadata is sent only once. Each gRPC message, on every lane (streaming ones
too), is a batch (``Batched``): the messages that were waiting to go when the stream was ready
to write, at most ``BATCH_ITEMS`` and about ``BATCH_BYTES``. One write per message is what a
stream costs (a gRPC operation and its completion, handed from gRPC's poller thread to the
event loop): measured on a bidi stream here, 55-73 µs of the client's CPU per message sent and
answered one by one, 25 µs in batches of 4, 10 µs in batches of 8. A lone message is a batch
of one, so nothing waits for company.

Streaming (``StreamMany``): the client's messages are envelopes (``call_id`` and one of
``open`` (the request), ``credit`` (a count), ``cancel``); the server's carry the call's
``call_id`` and one chunk, the call's ``last`` message marks its end (what the end of a
server-streaming call's response was), ``failed`` the server's failure (what a status other
than OK was). Flow control is per call, by credit: the server may send a call
``STREAM_WINDOW`` chunks after its open and one more per credit; the client grants credit as
its caller reads chunks, in batches of half the window. So a slow reader holds at most a
window of its own chunks in the client and stops its own server task (and, through it, the
provider's connection), and never the lane: the lane's reader only moves each message to its
call. ``cancel`` stops the call's task on the server (the caller went away, or its deadline
passed).

Both: a message with ``call_id`` 0 from the server is a GOAWAY: the server is shutting down,
will finish what it already received and wants no new calls on this stream; the client opens
no more calls on it, half-closes it once the calls in flight on it have ended (a stream's
credits and cancels still travel on it until then) and opens a new one for later calls.

What a multiplexed unary call does not do: carry a deadline to the server (the client stops
waiting at its timeout; the server's own timeouts bound the work), or cancel the server's work
when the caller goes away. A multiplexed stream does both, by ``cancel``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc

from unigate import telemetry
from unigate.v1 import auth_pb2, relay_pb2

log = logging.getLogger(__name__)

# The methods the multiplexed ones (AuthorizeMany, CallMany, StreamMany) carry: the names
# their calls' spans and logs go by, on both ends.
AUTHORIZE = "/unigate.v1.AuthService/Authorize"
RELAY_CALL = "/unigate.v1.RelayService/Call"
RELAY_STREAM = "/unigate.v1.RelayService/Stream"

GOAWAY_CALL_ID = 0
# A lane's batch: at most this many messages, and no more once this size is reached.
BATCH_ITEMS = 64
BATCH_BYTES = 1024 * 1024
# Chunks the server may send a stream ahead of its reader; the client grants credit in
# batches of half of it. A relay's chunk is usually one SSE event (a token or a few), so 16
# leave the provider's pace unhindered while a reader that stalls holds at most 16 chunks.
STREAM_WINDOW = 16


class _Request(Protocol):
    call_id: int

    @property
    def trace_context(self) -> MutableMapping[str, str]: ...


class _Response(Protocol):
    call_id: int


class _Down(Protocol):
    call_id: int


class _StreamDown(Protocol):
    """What a streaming lane's server sends (``RelayStreamDown``)."""

    call_id: int
    last: bool
    failed: str

    def HasField(self, field_name: Any, /) -> bool: ...

    @property
    def chunk(self) -> Any: ...


class _StreamUp(Protocol):
    """What a streaming lane's client sends (``RelayStreamUp``)."""

    call_id: int

    def WhichOneof(self, oneof_group: Any, /) -> str | None: ...

    @property
    def open(self) -> Any: ...

    @property
    def credit(self) -> int: ...


ReqT = TypeVar("ReqT", bound=_Request)
RespT = TypeVar("RespT", bound=_Response)
UpT = TypeVar("UpT")
DownT = TypeVar("DownT", bound=_Down)
SUpT = TypeVar("SUpT", bound=_StreamUp)
SDownT = TypeVar("SDownT", bound=_StreamDown)
ChunkT = TypeVar("ChunkT")

ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class Batched(Generic[ItemT]):
    """How one direction of a lane travels: several messages in one gRPC message,
    ``wire`` (e.g. ``RelayRequests``) with the messages in its repeated ``field``."""

    wire: Callable[..., Any]
    field: str

    def pack(self, items: list[ItemT]) -> Any:
        return self.wire(**{self.field: items})

    def unpack(self, message: Any) -> Iterable[ItemT]:
        items: Iterable[ItemT] = getattr(message, self.field)
        return items


@dataclass(frozen=True, slots=True)
class LaneWire(Generic[UpT, DownT]):
    """A lane's two directions: the client's messages' batches and the server's."""

    up: Batched[UpT]
    down: Batched[DownT]


ItemQ = TypeVar("ItemQ")
MsgT = TypeVar("MsgT")


def _batch_from(
    first: ItemQ,
    outbox: asyncio.Queue[ItemQ | None],
    admit: Callable[[ItemQ], MsgT | None],
) -> tuple[list[MsgT], bool]:
    """``first`` and whatever else waits in ``outbox`` right now, each through ``admit``
    (None: not sent), at most ``BATCH_ITEMS`` messages and no more once ``BATCH_BYTES`` is
    reached; and whether the queue's end (None) was taken. Sizes are counted only while
    another message waits to join, so a lone message costs no ``ByteSize``."""
    batch: list[MsgT] = []
    size = 0
    item = first
    while True:
        message = admit(item)
        if message is not None:
            batch.append(message)
        if outbox.empty() or len(batch) >= BATCH_ITEMS:
            return batch, False
        if message is not None:
            size += message.ByteSize()  # type: ignore[attr-defined]
            if size >= BATCH_BYTES:
                return batch, False
        if (taken := outbox.get_nowait()) is None:
            return batch, True
        item = taken


def _as_is(message: MsgT) -> MsgT:
    return message


# What a stub's stream-stream method is, seen from here: give it the message iterator, get
# the call back (stub.AuthorizeMany, bound to its options by the caller).
OpenStream = Callable[[AsyncIterator[UpT]], "grpc.aio.StreamStreamCall[Any, Any]"]


class MuxError(Exception):
    """A multiplexed call got no answer."""


class MuxUnavailable(MuxError):
    """The stream broke (or could not be opened) with the call in flight. The server may or
    may not have done the work."""


class MuxTimeout(MuxError):
    """No answer within the caller's timeout."""


class MuxFailed(MuxError):
    """The server failed while serving the call (a multiplexed stream's ``failed``): what a
    status other than OK (UNKNOWN, an exception in the handler) is to a call of its own."""


class _NotSent(MuxUnavailable):
    """The stream ended before the request was handed to it: safe to send elsewhere."""


# How long after a server went away (or a stream broke) lanes with a ``settling_age`` keep
# being replaced at that age: long enough for a restarted replica's successor to come up.
SETTLING_SECONDS = 120.0
# A stream lane's age limit meanwhile: a streaming call is long and its placement matters
# (a call of its own was placed afresh each time); a lane open costs about one such call.
STREAM_SETTLING_AGE = 1.0

# A request whose stream failed before sending it is sent on a fresh stream, this many times
# at most (a relay shutting down refuses new streams while the client learns of it).
_SENDS = 3


class _Receiver(Protocol[DownT]):  # type: ignore[misc]
    """One call in flight on a lane, as the lane's reader sees it."""

    def deliver(self, message: DownT) -> bool:
        """Take one of the call's messages; True when it was the call's last."""
        ...

    def fail(self, error: MuxUnavailable) -> None: ...


class _Lane(Generic[UpT, DownT]):
    """One open stream and the calls in flight on it."""

    def __init__(
        self,
        open_stream: OpenStream[UpT],
        name: str,
        unsettled: Callable[[], None],
        up: Batched[UpT],
        down: Batched[DownT],
    ) -> None:
        # Called when the server goes away or the stream breaks: a replica is leaving.
        self._unsettled = unsettled
        # How the lane's messages travel: in batches, each way.
        self._up_wire = up
        self._down_wire = down
        self.pending: dict[int, _Receiver[DownT]] = {}
        # Of the pending calls, those whose opening message went to gRPC.
        self.sent: set[int] = set()
        self.accepting = True
        self.opened = time.monotonic()
        self._name = name
        self._half_closed = False
        # (message, whether it opens a call) or None: half-close.
        self._outbox: asyncio.Queue[tuple[UpT, bool] | None] = asyncio.Queue()
        self._call = open_stream(self._requests())
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[UpT]:
        # Requests wait here, not in gRPC's write, until the stream is up: then one whose
        # caller gave up meanwhile (timeout, cancelled) is never sent, and the server does no
        # work nobody will see (auth would reserve quota for a request already refused).
        try:
            await self._call.wait_for_connection()
        except grpc.aio.AioRpcError:
            return  # the reader sees the same error and fails the calls
        outbox = self._outbox
        while (item := await outbox.get()) is not None:
            # What else is waiting goes in the same gRPC message.
            batch, closing = _batch_from(item, outbox, self._admitted)
            if batch:
                yield self._up_wire.pack(batch)
            if closing:
                return

    def _admitted(self, item: tuple[UpT, bool]) -> UpT | None:
        """The message to send, or None for a call forgotten before it was sent."""
        message, opens = item
        if opens:
            call_id: int = message.call_id  # type: ignore[attr-defined]
            if call_id not in self.pending:
                return None
            self.sent.add(call_id)
        return message

    @property
    def gathering(self) -> bool:
        """Messages wait for this lane's next write, fewer than a batch holds: a call joining
        them goes in the same batch. A lane with a batch's worth or more waiting (its stream
        is not up yet, or its server reads slowly) is not joined, so the calls that pile up
        on a slow replica's lane stay within a batch while the other lanes take the rest."""
        return 0 < self._outbox.qsize() < BATCH_ITEMS

    def send(self, call_id: int, message: UpT, receiver: _Receiver[DownT]) -> None:
        """Open a call: ``message`` is sent when the stream is up, unless the call was
        forgotten by then."""
        self.pending[call_id] = receiver
        self._outbox.put_nowait((message, True))

    def control(self, message: UpT) -> None:
        """Send a message about a call already sent (a stream's credit or cancel)."""
        if not self._half_closed:
            self._outbox.put_nowait((message, False))

    def forget(self, call_id: int) -> None:
        """The call is over for its caller: later messages for it are dropped."""
        self.pending.pop(call_id, None)
        self.sent.discard(call_id)
        if not self.accepting:
            self._half_close_when_idle()

    def stop_sending(self) -> None:
        """No new calls on this stream; it is half-closed once its calls have ended."""
        self.accepting = False
        self._half_close_when_idle()

    def _half_close_when_idle(self) -> None:
        if not self.pending and not self._half_closed:
            self._half_closed = True
            self._outbox.put_nowait(None)

    def cancel(self) -> None:
        self._call.cancel()

    async def _read(self) -> None:
        why = "the server ended the stream"
        try:
            async for wire in self._call:
                for message in self._down_wire.unpack(wire):
                    call_id = message.call_id
                    if call_id == GOAWAY_CALL_ID:
                        self._unsettled()
                        self.stop_sending()
                        continue
                    receiver = self.pending.get(call_id)
                    if receiver is not None and receiver.deliver(message):
                        self.forget(call_id)
        except grpc.aio.AioRpcError as exc:
            why = f"{exc.code().name}: {exc.details()}"
            self._unsettled()
        except asyncio.CancelledError:
            why = "the client closed the stream"
        finally:
            self.accepting = False
            pending, self.pending = self.pending, {}
            sent, self.sent = self.sent, set()
            # Ends the request iterator too, so gRPC's task consuming it does not linger.
            self._half_close_when_idle()
            if pending:
                log.warning(
                    "%s stream lost with %d calls in flight: %s", self._name, len(pending), why
                )
            for call_id, receiver in pending.items():
                lost = MuxUnavailable if call_id in sent else _NotSent
                receiver.fail(lost(f"{self._name}: {why}"))


class _Lanes(Generic[UpT, DownT]):
    """``lanes`` streams used in turn (a call joins a lane whose batch is gathering, else
    takes the next lane); a stream that broke or was told to go away is
    replaced on next use, and so is one older than ``max_age`` seconds: a new stream is
    placed by the channel's balancing policy afresh, so replicas added since (or a server's
    reconnect after its max_connection_age) get their share, as they would with calls of
    their own.

    ``settling_age``, when given: for ``SETTLING_SECONDS`` after a server went away or a
    stream broke (a replica draining, restarting, or gone), streams are replaced once they
    are this old instead, so the replica's successor, or the replicas that take its place,
    get their share within about that long of being up rather than of ``max_age``."""

    def __init__(
        self,
        open_stream: OpenStream[UpT],
        *,
        method: str,
        lanes: int,
        max_age: float,
        up: Batched[UpT],
        down: Batched[DownT],
        settling_age: float | None = None,
    ) -> None:
        self._open = open_stream
        self._method = method
        self._up_wire = up
        self._down_wire = down
        self._max_age = max_age
        self._settling_age = settling_age
        self._settled_at = 0.0
        self._lanes: list[_Lane[UpT, DownT] | None] = [None] * max(1, lanes)
        # Replaced lanes still owe their calls in flight: kept until they end.
        self._retired: set[_Lane[UpT, DownT]] = set()
        self._ids = itertools.count(1)
        self._turn = 0

    def _lane(self) -> _Lane[UpT, DownT]:
        lane = self._lanes[self._turn]
        if lane is None or not lane.gathering:
            # The next lane, unless this one's next batch is still gathering: a call joins
            # it rather than starting a batch of its own on another lane (round-robin per
            # call had every lane write its own small batches: at 32 connections, 4 lanes
            # cost the gateway 0.41 ms of CPU per request against 0.34 for one lane).
            self._turn = (self._turn + 1) % len(self._lanes)
            lane = self._lanes[self._turn]
        now = time.monotonic()
        max_age = self._max_age
        if self._settling_age is not None and now < self._settled_at:
            max_age = self._settling_age
        if lane is not None and lane.accepting and now - lane.opened > max_age:
            lane.stop_sending()
        if lane is None or not lane.accepting:
            if lane is not None and not lane.reader.done():
                self._retire(lane)
            lane = self._lanes[self._turn] = _Lane(
                self._open, self._method, self._unsettled, self._up_wire, self._down_wire
            )
        return lane

    def _unsettled(self) -> None:
        self._settled_at = time.monotonic() + SETTLING_SECONDS

    def _retire(self, lane: _Lane[UpT, DownT]) -> None:
        self._retired.add(lane)
        lane.reader.add_done_callback(lambda _: self._retired.discard(lane))

    async def close(self, grace: float = 5.0) -> None:
        """Open no more calls, let those in flight end (up to ``grace``), close the streams."""
        lanes = [lane for lane in self._lanes if lane is not None] + list(self._retired)
        for lane in lanes:
            lane.stop_sending()
        readers = [lane.reader for lane in lanes]
        if readers:
            _, late = await asyncio.wait(readers, timeout=grace)
            for lane in lanes:
                if lane.reader in late:
                    lane.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        self._lanes = [None] * len(self._lanes)


class _Answer(Generic[RespT]):
    """A unary call's receiver: its one answer."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[RespT] = asyncio.get_running_loop().create_future()

    def deliver(self, message: RespT) -> bool:
        if not self.future.done():
            self.future.set_result(message)
        return True

    def fail(self, error: MuxUnavailable) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class MuxClient(_Lanes[ReqT, RespT]):
    """Unary calls of ``method`` (named as its unary twin, for spans and logs) over
    ``lanes`` streams (``_Lanes``), in batches (``wire``)."""

    def __init__(
        self,
        open_stream: OpenStream[Any],
        wire: LaneWire[ReqT, RespT],
        *,
        method: str,
        lanes: int = 4,
        max_age: float = 30.0,
    ) -> None:
        super().__init__(
            open_stream,
            method=method,
            lanes=lanes,
            max_age=max_age,
            up=wire.up,
            down=wire.down,
        )

    async def call(self, request: ReqT, within: float) -> RespT:
        """Send ``request`` (its ``call_id`` is set here) and wait ``within`` seconds at most
        for its answer.

        Raises MuxTimeout or MuxUnavailable; never grpc's own errors."""
        request.call_id = next(self._ids)
        span = telemetry.start_rpc_client(self._method, request.trace_context)
        try:
            async with asyncio.timeout(within):
                response = await self._send(request)
        except TimeoutError:
            telemetry.end_rpc_client(span, "DEADLINE_EXCEEDED")
            raise MuxTimeout(f"{self._method}: no answer within {within:g} s") from None
        except BaseException as exc:
            code = "UNAVAILABLE" if isinstance(exc, MuxError) else "CANCELLED"
            telemetry.end_rpc_client(span, code)
            raise
        telemetry.end_rpc_client(span, None)
        return response

    async def _send(self, request: ReqT) -> RespT:
        for sends_left in range(_SENDS - 1, -1, -1):
            lane = self._lane()
            answer: _Answer[RespT] = _Answer()
            lane.send(request.call_id, request, answer)
            try:
                return await answer.future
            except _NotSent:
                if not sends_left:
                    raise
            finally:
                lane.forget(request.call_id)
        raise AssertionError("unreachable")


class MuxStream(Generic[SUpT, SDownT, ChunkT]):
    """One server-streaming call on a lane, read as a grpc.aio call is: ``read()`` gives the
    next chunk, ``grpc.aio.EOF`` after the last; ``cancel()`` stops it on the server.

    A call its caller drops unfinished is cancelled when it is collected, as a grpc.aio call
    is (the gateway's response may be abandoned before it reads a byte: a client gone before
    its headers): else the server's task would wait for credit, and hold its provider's
    connection, for as long as the lane lives. So the lane holds the call's state
    (``_StreamCall``), and only the caller holds this."""

    __slots__ = ("__weakref__", "_call")

    def __init__(self, call: _StreamCall[SUpT, SDownT, ChunkT]) -> None:
        self._call = call
        # Not at exit: the lanes go with the process.
        weakref.finalize(self, call.abandon).atexit = False

    @property
    def buffered(self) -> int:
        """Chunks received and not yet read (at most ``STREAM_WINDOW``)."""
        return len(self._call.chunks)

    async def read(self) -> ChunkT | Any:
        """The next chunk; ``grpc.aio.EOF`` after the last. Raises MuxUnavailable (the lane
        broke), MuxFailed (the server failed), MuxTimeout (past the call's deadline: the
        call is cancelled)."""
        return await self._call.read()

    def cancel(self) -> bool:
        """Stop the call, on the server too; False if it had already ended."""
        return self._call.cancel()


class _StreamCall(Generic[SUpT, SDownT, ChunkT]):
    """A multiplexed stream's state: the lane's receiver of its messages, and what
    ``MuxStream`` reads."""

    def __init__(
        self,
        lanes: MuxStreamClient[SUpT, SDownT, ChunkT],
        request: Any,
        within: float,
    ) -> None:
        self._lanes = lanes
        self._request = request
        self.call_id = next(lanes._ids)
        self._span = telemetry.start_rpc_client(lanes._method, request.trace_context)
        self._deadline = asyncio.get_running_loop().time() + within
        self._within = within
        self.chunks: collections.deque[ChunkT] = collections.deque()
        self._arrived = asyncio.Event()
        self._error: MuxError | None = None
        # The call has ended (its last message, a failure, or a cancel).
        self._over = False
        # Whether anything came back yet: until then, a stream that failed before sending
        # the request may send it elsewhere.
        self._answered = False
        self._sends_left = _SENDS - 1
        # Chunks read since the last credit granted.
        self._read = 0
        self._lane = self._open()

    def _open(self) -> _Lane[SUpT, SDownT]:
        lane = self._lanes._lane()
        lane.send(
            self.call_id, self._lanes._envelope(call_id=self.call_id, open=self._request), self
        )
        return lane

    def deliver(self, message: SDownT) -> bool:
        self._answered = True
        if message.HasField("chunk"):
            self.chunks.append(message.chunk)
        if message.failed:
            self._error = MuxFailed(f"{self._lanes._method}: {message.failed}")
        if message.last or message.failed:
            self._end("UNKNOWN" if message.failed else None)
        self._arrived.set()
        return self._over

    def fail(self, error: MuxUnavailable) -> None:
        if isinstance(error, _NotSent) and not self._answered and self._sends_left:
            # Never sent: opened again on a fresh stream when the caller next reads.
            self._sends_left -= 1
            self._lane = self._open()
            return
        self._error = error
        self._end("UNAVAILABLE")
        self._arrived.set()

    def _end(self, code: str | None) -> None:
        if not self._over:
            self._over = True
            telemetry.end_rpc_client(self._span, code)

    async def read(self) -> ChunkT | Any:
        while not self.chunks:
            if self._error is not None:
                raise self._error
            if self._over:
                return grpc.aio.EOF
            self._arrived.clear()
            try:
                async with asyncio.timeout_at(self._deadline):
                    await self._arrived.wait()
            except TimeoutError:
                self.cancel("DEADLINE_EXCEEDED")
                self._error = MuxTimeout(
                    f"{self._lanes._method}: not finished within {self._within:g} s"
                )
        chunk = self.chunks.popleft()
        self._read += 1
        if self._read >= STREAM_WINDOW // 2 and not self._over:
            self._lane.control(self._lanes._envelope(call_id=self.call_id, credit=self._read))
            self._read = 0
        return chunk

    def abandon(self) -> None:
        """The caller dropped the call: cancel it if it has not ended."""
        if not self._over:
            # RuntimeError: no event loop any more (the process is exiting).
            with contextlib.suppress(RuntimeError):
                self.cancel()

    def cancel(self, code: str = "CANCELLED") -> bool:
        if self._over:
            return False
        if self.call_id in self._lane.sent:
            self._lane.control(self._lanes._envelope(call_id=self.call_id, cancel=True))
        self._lane.forget(self.call_id)
        self._end(code)
        self._arrived.set()
        return True


class MuxStreamClient(_Lanes[SUpT, SDownT], Generic[SUpT, SDownT, ChunkT]):
    """Server-streaming calls of ``method`` (named as its own streaming twin, for spans and
    logs) over ``lanes`` streams (``_Lanes``); ``envelope`` builds the client's messages
    (``RelayStreamUp``)."""

    def __init__(
        self,
        open_stream: OpenStream[Any],
        envelope: Callable[..., SUpT],
        wire: LaneWire[SUpT, SDownT],
        *,
        method: str,
        lanes: int = 4,
        max_age: float = 30.0,
    ) -> None:
        super().__init__(
            open_stream,
            method=method,
            lanes=lanes,
            max_age=max_age,
            settling_age=STREAM_SETTLING_AGE,
            up=wire.up,
            down=wire.down,
        )
        self._envelope = envelope

    def open(self, request: Any, within: float) -> MuxStream[SUpT, SDownT, ChunkT]:
        """Start a call of ``request`` (its ``trace_context`` is filled in here, from the
        current context) that must end within ``within`` seconds."""
        return MuxStream(_StreamCall(self, request, within))


class _Served(Generic[DownT]):
    """A lane as its server sees it: the answers going out, the calls running."""

    __slots__ = ("credits", "outbox", "running")

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[DownT | None] = asyncio.Queue()
        self.running: dict[int, asyncio.Task[None]] = {}
        self.credits: dict[int, _Credit] = {}

    def start(self, call_id: int, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.running[call_id] = task
        task.add_done_callback(lambda _: self._done(call_id, task))

    def _done(self, call_id: int, task: asyncio.Task[None]) -> None:
        if self.running.get(call_id) is task:
            del self.running[call_id]
            self.credits.pop(call_id, None)


class _Credit:
    """How many more chunks one stream may send."""

    __slots__ = ("_left", "_more")

    def __init__(self, left: int) -> None:
        self._left = left
        self._more = asyncio.Event()

    def grant(self, count: int) -> None:
        self._left += count
        self._more.set()

    async def take(self) -> None:
        while self._left <= 0:
            self._more.clear()
            await self._more.wait()
        self._left -= 1


class _MuxServing(Generic[UpT, DownT]):
    """Serves one multiplexed method: every call runs as its own task, answers go out as
    they come. ``drain`` sends every open stream a GOAWAY (call it before the server's
    ``stop(grace)``, so clients move their new calls elsewhere while these finish)."""

    def __init__(
        self,
        goaway: Callable[[], DownT],
        *,
        method: str,
        up: Batched[UpT],
        down: Batched[DownT],
    ) -> None:
        self._goaway = goaway
        self._method = method
        # How the lane's messages travel: in batches, each way.
        self._up_wire = up
        self._down_wire = down
        self._outboxes: set[asyncio.Queue[DownT | None]] = set()
        self._draining = False

    def drain(self) -> None:
        self._draining = True
        for outbox in self._outboxes:
            outbox.put_nowait(self._goaway())

    def _receive(self, message: UpT, lane: _Served[DownT]) -> None:
        raise NotImplementedError

    async def serve(self, messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The stream's messages out for its messages in (batches on a unary lane)."""
        lane: _Served[DownT] = _Served()
        outbox = lane.outbox
        up, down = self._up_wire, self._down_wire

        async def read() -> None:
            try:
                async for wire in messages:
                    for message in up.unpack(wire):
                        self._receive(message, lane)
            except Exception as exc:  # the client went away: answer what is running, if it can
                log.debug("%s stream read ended: %r", self._method, exc)
            try:
                while lane.running:
                    await asyncio.wait(set(lane.running.values()))
            finally:
                outbox.put_nowait(None)

        self._outboxes.add(outbox)
        if self._draining:
            outbox.put_nowait(self._goaway())
        reader = asyncio.create_task(read())
        try:
            while (response := await outbox.get()) is not None:
                # The answers ready by now go in the same gRPC message.
                batch, closing = _batch_from(response, outbox, _as_is)
                yield down.pack(batch)
                if closing:
                    break
        finally:
            self._outboxes.discard(outbox)
            reader.cancel()
            for task in list(lane.running.values()):
                task.cancel()


class MuxServer(_MuxServing[ReqT, RespT]):
    """Serves multiplexed unary calls: ``handle`` answers each, ``on_error`` stands in for an
    answer when it raises."""

    def __init__(
        self,
        handle: Callable[[ReqT], Awaitable[RespT]],
        on_error: Callable[[BaseException], RespT],
        goaway: Callable[[], RespT],
        wire: LaneWire[ReqT, RespT],
        *,
        method: str,
    ) -> None:
        super().__init__(goaway, method=method, up=wire.up, down=wire.down)
        self._handle = handle
        self._on_error = on_error

    def _receive(self, message: ReqT, lane: _Served[RespT]) -> None:
        lane.start(message.call_id, self._one(message, lane.outbox))

    async def _one(self, request: ReqT, outbox: asyncio.Queue[RespT | None]) -> None:
        try:
            with telemetry.rpc_server_span(self._method, request.trace_context):
                response = await self._handle(request)
        except Exception as exc:
            log.exception("%s failed", self._method)
            response = self._on_error(exc)
        response.call_id = request.call_id
        outbox.put_nowait(response)


class MuxStreamServer(_MuxServing[SUpT, SDownT], Generic[SUpT, SDownT, ChunkT]):
    """Serves multiplexed server-streaming calls: ``handle`` gives each call's chunks, sent
    as its credit allows; ``down`` builds the server's messages (``RelayStreamDown``)."""

    def __init__(
        self,
        handle: Callable[[Any], AsyncIterator[ChunkT]],
        down: Callable[..., SDownT],
        wire: LaneWire[SUpT, SDownT],
        *,
        method: str,
    ) -> None:
        super().__init__(down, method=method, up=wire.up, down=wire.down)
        self._handle = handle
        self._down = down

    def _receive(self, message: SUpT, lane: _Served[SDownT]) -> None:
        call_id = message.call_id
        kind = message.WhichOneof("kind")
        if kind == "open":
            credit = lane.credits[call_id] = _Credit(STREAM_WINDOW)
            lane.start(call_id, self._one(call_id, message.open, credit, lane.outbox))
        elif kind == "credit":
            if (more := lane.credits.get(call_id)) is not None:
                more.grant(message.credit)
        elif kind == "cancel" and (task := lane.running.get(call_id)) is not None:
            task.cancel()

    async def _one(
        self,
        call_id: int,
        request: Any,
        credit: _Credit,
        outbox: asyncio.Queue[SDownT | None],
    ) -> None:
        try:
            with telemetry.rpc_server_span(self._method, request.trace_context):
                chunks = self._handle(request)
                try:
                    async for chunk in chunks:
                        await credit.take()
                        outbox.put_nowait(self._down(call_id=call_id, chunk=chunk))
                finally:
                    aclose = getattr(chunks, "aclose", None)
                    if aclose is not None:
                        await aclose()
        except Exception as exc:
            log.exception("%s failed", self._method)
            outbox.put_nowait(self._down(call_id=call_id, failed=repr(exc), last=True))
        else:
            outbox.put_nowait(self._down(call_id=call_id, last=True))


# The lanes' wires: one home for the gateway's clients and the services' servers.
AUTHORIZE_WIRE: LaneWire[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse] = LaneWire(
    Batched(auth_pb2.AuthorizeRequests, "calls"), Batched(auth_pb2.AuthorizeResponses, "results")
)
RELAY_CALL_WIRE: LaneWire[relay_pb2.RelayRequest, relay_pb2.RelayResult] = LaneWire(
    Batched(relay_pb2.RelayRequests, "calls"), Batched(relay_pb2.RelayResults, "results")
)
STREAM_WIRE: LaneWire[relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown] = LaneWire(
    Batched(relay_pb2.RelayStreamUps, "messages"), Batched(relay_pb2.RelayStreamDowns, "messages")
)
