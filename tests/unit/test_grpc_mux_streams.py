"""Multiplexed server-streaming calls (unigate.grpc_mux, ``StreamMany``) over a real grpc.aio
server: streams on one lane interleave and each reaches its own reader in order; a reader that
stops reading holds at most a window of chunks and stops its own server task, not the lane;
a cancel reaches the server's task; a GOAWAY lets the streams in flight finish and moves new
ones to a new stream; the server's failure and a lost stream reach the reader as errors."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from unigate import grpc_mux
from unigate.grpc_mux import (
    STREAM_WINDOW,
    STREAM_WIRE,
    MuxFailed,
    MuxStream,
    MuxStreamClient,
    MuxStreamServer,
    MuxTimeout,
    MuxUnavailable,
)
from unigate.v1 import relay_pb2, relay_pb2_grpc

METHOD = "/unigate.v1.RelayService/Stream"
Stream = MuxStream[relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk]


class Servicer(relay_pb2_grpc.RelayServiceServicer):
    """Streams ``<n> <pause>``: n chunks ``<request id> <i>``, pausing ``pause`` s before each
    (n = -1: until cancelled); ``fail <n>``: n chunks, then raises."""

    def __init__(self) -> None:
        self.streams_open = 0
        # Per request id: chunks produced so far, and how the handler ended.
        self.produced: dict[str, int] = {}
        self.ended: dict[str, str] = {}
        self.mux: MuxStreamServer[
            relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
        ] = MuxStreamServer(self.chunks, relay_pb2.RelayStreamDown, STREAM_WIRE, method=METHOD)

    async def chunks(self, request: relay_pb2.RelayRequest) -> AsyncIterator[relay_pb2.RelayChunk]:
        verb, _, rest = request.body.decode().partition(" ")
        rid = request.request_id
        self.produced[rid] = 0
        how = "cancelled"
        try:
            if verb == "fail":
                for i in range(int(rest)):
                    self.produced[rid] += 1
                    yield relay_pb2.RelayChunk(data=f"{rid} {i}".encode())
                how = "failed"
                raise RuntimeError("handler broke")
            count, pause = int(verb), float(rest or 0)
            i = 0
            while count < 0 or i < count:
                await asyncio.sleep(pause)
                self.produced[rid] += 1
                yield relay_pb2.RelayChunk(data=f"{rid} {i}".encode())
                i += 1
            yield relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(first_token_ms=i))
            how = "finished"
        finally:
            self.ended[rid] = how

    async def StreamMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayStreamUps],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayStreamDowns]:
        self.streams_open += 1
        try:
            async for message in self.mux.serve(request_iterator):
                yield message
        finally:
            self.streams_open -= 1


class Running:
    def __init__(self) -> None:
        self.servicer = Servicer()
        self.server = grpc.aio.server()
        relay_pb2_grpc.add_RelayServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def __aenter__(self) -> Running:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(0)


def client_for(
    channel: grpc.aio.Channel, lanes: int = 1
) -> MuxStreamClient[relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk]:
    stub = relay_pb2_grpc.RelayServiceStub(channel)
    return MuxStreamClient(
        stub.StreamMany, relay_pb2.RelayStreamUp, STREAM_WIRE, method=METHOD, lanes=lanes
    )


def request(request_id: str, body: str) -> relay_pb2.RelayRequest:
    return relay_pb2.RelayRequest(request_id=request_id, body=body.encode(), stream=True)


async def read_all(stream: Stream) -> tuple[list[bytes], relay_pb2.StreamEnd | None]:
    data: list[bytes] = []
    while isinstance(chunk := await stream.read(), relay_pb2.RelayChunk):
        if chunk.HasField("end"):
            end = chunk.end
            assert await stream.read() is grpc.aio.EOF
            return data, end
        data.append(chunk.data)
    return data, None


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_streams_on_one_lane_interleave_each_in_its_own_order() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        firsts: dict[str, float] = {}
        lasts: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        async def one(i: int) -> list[bytes]:
            stream = mux.open(request(f"s{i}", "40 0.005"), 30)
            data: list[bytes] = []
            while isinstance(chunk := await stream.read(), relay_pb2.RelayChunk):
                if chunk.HasField("end"):
                    assert chunk.end.first_token_ms == 40
                    continue
                firsts.setdefault(f"s{i}", loop.time())
                data.append(chunk.data)
            lasts[f"s{i}"] = loop.time()
            return data

        results = await asyncio.gather(*(one(i) for i in range(20)))
        for i, data in enumerate(results):
            assert data == [f"s{i} {n}".encode() for n in range(40)]
        # All twenty went on the one lane, and ran side by side: every stream had its first
        # chunk before any had its last (in series, 40 pauses each would separate them).
        assert running.servicer.streams_open == 1
        assert max(firsts.values()) < min(lasts.values())
        assert set(running.servicer.ended.values()) == {"finished"}
        await mux.close()
        await until(lambda: running.servicer.streams_open == 0)


async def test_a_reader_that_stops_holds_a_window_and_stalls_only_itself() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        stalled = mux.open(request("stalled", "2000 0"), 60)
        first = await stalled.read()
        assert isinstance(first, relay_pb2.RelayChunk) and first.data == b"stalled 0"
        # The reader stops. The server produces what the window allows and then waits.
        await until(lambda: running.servicer.produced.get("stalled", 0) >= STREAM_WINDOW)
        # Meanwhile another stream on the same lane runs to its end, unhindered.
        data, end = await read_all(mux.open(request("other", "300 0"), 60))
        assert data == [f"other {n}".encode() for n in range(300)]
        assert end is not None
        assert running.servicer.streams_open == 1
        # The stalled stream's producer is held at its window (plus the chunk it produced
        # and now waits to send): memory does not grow with what the provider would send.
        assert running.servicer.produced["stalled"] <= STREAM_WINDOW + 2
        assert stalled.buffered <= STREAM_WINDOW
        # Read on: every chunk arrives, in order, and the producer follows the reader.
        data, end = await read_all(stalled)
        assert [b"stalled 0", *data] == [f"stalled {n}".encode() for n in range(2000)]
        assert running.servicer.ended["stalled"] == "finished"
        await mux.close()


async def test_cancel_reaches_the_server_and_stops_its_stream() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        endless = mux.open(request("endless", "-1 0.01"), 60)
        for n in range(3):
            chunk = await endless.read()
            assert isinstance(chunk, relay_pb2.RelayChunk) and chunk.data == f"endless {n}".encode()
        assert endless.cancel()
        await until(lambda: running.servicer.ended.get("endless") == "cancelled")
        assert await endless.read() is grpc.aio.EOF
        assert not endless.cancel()
        # The lane goes on serving.
        data, _ = await read_all(mux.open(request("after", "3 0"), 10))
        assert data == [b"after 0", b"after 1", b"after 2"]
        assert running.servicer.streams_open == 1
        await mux.close()


async def test_a_stream_its_caller_drops_is_cancelled() -> None:
    """As a grpc.aio call is when collected: the gateway may drop a response unread (its
    client gone before the headers), and the relay must not wait for credit for ever."""
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        dropped = mux.open(request("dropped", "-1 0"), 60)
        assert isinstance(await dropped.read(), relay_pb2.RelayChunk)
        await until(lambda: running.servicer.produced.get("dropped", 0) >= STREAM_WINDOW)
        assert "dropped" not in running.servicer.ended
        del dropped
        gc.collect()
        await until(lambda: running.servicer.ended.get("dropped") == "cancelled")
        await mux.close()
        await until(lambda: running.servicer.streams_open == 0)


async def test_a_stream_past_its_deadline_times_out_and_is_cancelled() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        slow = mux.open(request("slow", "-1 0.05"), 0.3)
        with pytest.raises(MuxTimeout):
            while True:
                await slow.read()
        await until(lambda: running.servicer.ended.get("slow") == "cancelled")
        await mux.close()


async def test_goaway_lets_streams_in_flight_finish_and_moves_new_ones() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        # Longer than a window, so credits must still travel on the lane after its GOAWAY.
        old = mux.open(request("old", f"{STREAM_WINDOW * 3} 0.01"), 30)
        first = await old.read()
        assert isinstance(first, relay_pb2.RelayChunk) and first.data == b"old 0"
        running.servicer.mux.drain()
        await asyncio.sleep(0.05)
        # A stream opened now goes on a new lane (which the draining server also tells to go
        # away, after answering what it was sent) ...
        data, end = await read_all(mux.open(request("new", "2 0"), 30))
        assert data == [b"new 0", b"new 1"] and end is not None
        # ... while the one in flight reads on to its end on the old lane.
        data, end = await read_all(old)
        assert [b"old 0", *data] == [f"old {n}".encode() for n in range(STREAM_WINDOW * 3)]
        assert end is not None
        # Both lanes, their streams ended, were half-closed by the client and ended.
        await until(lambda: running.servicer.streams_open == 0)
        assert running.servicer.ended == {"old": "finished", "new": "finished"}
        await mux.close()


async def test_the_servers_failure_follows_the_chunks_sent_before_it() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        broken = mux.open(request("broken", "fail 2"), 10)
        for n in range(2):
            chunk = await broken.read()
            assert isinstance(chunk, relay_pb2.RelayChunk) and chunk.data == f"broken {n}".encode()
        with pytest.raises(MuxFailed, match="handler broke"):
            await broken.read()
        data, _ = await read_all(mux.open(request("fine", "1 0"), 10))
        assert data == [b"fine 0"]
        await mux.close()


async def test_a_lost_lane_fails_its_streams_and_the_server_stops_them() -> None:
    running = Running()
    await running.server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        endless = mux.open(request("endless", "-1 0.01"), 60)
        assert isinstance(await endless.read(), relay_pb2.RelayChunk)
        await running.server.stop(0)
        with pytest.raises(MuxUnavailable):
            while True:
                await endless.read()
        assert running.servicer.ended.get("endless") == "cancelled"
        await mux.close()


async def test_after_a_goaway_stream_lanes_are_placed_afresh_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane opened while a replica was away is replaced at the settling age, not at its
    30 s: the replica's successor (here: whatever the next opens reach) gets streams soon."""
    monkeypatch.setattr(grpc_mux, "STREAM_SETTLING_AGE", 0.2)
    async with (
        Running() as leaving,
        Running() as staying,
        grpc.aio.insecure_channel(f"127.0.0.1:{leaving.port}") as to_leaving,
        grpc.aio.insecure_channel(f"127.0.0.1:{staying.port}") as to_staying,
    ):
        stubs = [
            relay_pb2_grpc.RelayServiceStub(to_leaving),
            relay_pb2_grpc.RelayServiceStub(to_staying),
        ]
        opened: list[int] = []

        def open_stream(messages: AsyncIterator[relay_pb2.RelayStreamUp]) -> Any:
            opened.append(len(opened))
            return stubs[min(len(opened) - 1, 1)].StreamMany(messages)

        mux: MuxStreamClient[
            relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
        ] = MuxStreamClient(
            open_stream, relay_pb2.RelayStreamUp, STREAM_WIRE, method=METHOD, lanes=1
        )
        await read_all(mux.open(request("before", "1 0"), 10))
        leaving.servicer.mux.drain()
        await until(lambda: leaving.servicer.streams_open == 0)
        await read_all(mux.open(request("moved", "1 0"), 10))
        assert len(opened) == 2 and "moved" in staying.servicer.ended
        # Young lanes are kept ...
        await read_all(mux.open(request("kept", "1 0"), 10))
        assert len(opened) == 2
        # ... and replaced once past the settling age (30 s otherwise).
        await asyncio.sleep(0.3)
        await read_all(mux.open(request("afresh", "1 0"), 10))
        assert len(opened) == 3
        await mux.close()
