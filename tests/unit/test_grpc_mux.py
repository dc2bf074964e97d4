"""Multiplexed unary calls (unigate.grpc_mux) over a real grpc.aio server: answers reach their
own callers in any order, failures stay per call, a lost stream fails only what was in flight
and the next call opens a new one, a GOAWAY moves new calls to a new stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from unigate.grpc_mux import (
    BATCH_ITEMS,
    RELAY_CALL_WIRE,
    MuxClient,
    MuxServer,
    MuxTimeout,
    MuxUnavailable,
)
from unigate.v1 import relay_pb2, relay_pb2_grpc
from unigate_cli.devstack import free_port

METHOD = "/unigate.v1.RelayService/Call"


class Servicer(relay_pb2_grpc.RelayServiceServicer):
    """Answers ``sleep <s>`` after s seconds with the request id, ``fail`` by raising."""

    def __init__(self) -> None:
        self.streams_open = 0
        self.handled: list[str] = []
        # gRPC messages received, and the calls they carried.
        self.messages_in = 0
        self.calls_in = 0
        self.many: MuxServer[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxServer(
            self.handle,
            lambda exc: relay_pb2.RelayResult(http_status=503, body=repr(exc).encode()),
            relay_pb2.RelayResult,
            RELAY_CALL_WIRE,
            method=METHOD,
        )

    async def _counted(
        self, messages: AsyncIterator[relay_pb2.RelayRequests]
    ) -> AsyncIterator[relay_pb2.RelayRequests]:
        async for message in messages:
            self.messages_in += 1
            self.calls_in += len(message.calls)
            yield message

    async def handle(self, request: relay_pb2.RelayRequest) -> relay_pb2.RelayResult:
        verb, _, arg = request.body.decode().partition(" ")
        if verb == "fail":
            raise RuntimeError("handler broke")
        await asyncio.sleep(float(arg or 0))
        self.handled.append(request.request_id)
        return relay_pb2.RelayResult(http_status=200, body=request.request_id.encode())

    async def CallMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayRequests],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayResults]:
        self.streams_open += 1
        try:
            async for results in self.many.serve(self._counted(request_iterator)):
                yield results
        finally:
            self.streams_open -= 1


class Running:
    def __init__(self, port: int = 0) -> None:
        self.servicer = Servicer()
        self.server = grpc.aio.server()
        relay_pb2_grpc.add_RelayServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")

    async def __aenter__(self) -> Running:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(0)


def request(request_id: str, body: str) -> relay_pb2.RelayRequest:
    return relay_pb2.RelayRequest(request_id=request_id, body=body.encode())


def client_for(
    channel: grpc.aio.Channel, lanes: int = 2
) -> MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult]:
    stub = relay_pb2_grpc.RelayServiceStub(channel)
    return MuxClient(stub.CallMany, RELAY_CALL_WIRE, method=METHOD, lanes=lanes)


async def test_answers_reach_their_own_callers_in_any_order() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch)
        # The first sent finishes last.
        delays = [0.2 - i * 0.01 for i in range(20)]
        results = await asyncio.gather(
            *(mux.call(request(f"r{i}", f"sleep {d}"), 5) for i, d in enumerate(delays))
        )
        assert [r.body.decode() for r in results] == [f"r{i}" for i in range(20)]
        # They really finished out of order on the server.
        assert running.servicer.handled[0] == "r19" and running.servicer.handled[-1] == "r0"
        # Sent together, the calls went in the batch gathering on one lane: one stream, not
        # twenty calls.
        assert running.servicer.streams_open == 1
        # A call sent once that batch has gone takes the next lane: over time the calls
        # spread over every lane (and so over the replicas the lanes are placed on).
        assert (await mux.call(request("alone", "sleep 0"), 5)).body == b"alone"
        assert running.servicer.streams_open == 2
        await mux.close()
        await asyncio.sleep(0.05)
        assert running.servicer.streams_open == 0


async def test_a_failing_handler_fails_only_its_own_call() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        ok, broken, ok2 = await asyncio.gather(
            mux.call(request("a", "sleep 0.05"), 5),
            mux.call(request("b", "fail"), 5),
            mux.call(request("c", "sleep 0"), 5),
        )
        assert (ok.http_status, ok.body) == (200, b"a")
        assert broken.http_status == 503 and b"handler broke" in broken.body
        assert (ok2.http_status, ok2.body) == (200, b"c")
        await mux.close()


async def test_timeout_leaves_the_stream_usable() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        with pytest.raises(MuxTimeout):
            await mux.call(request("slow", "sleep 0.3"), 0.05)
        # The late answer arrives on the same stream and is dropped; later calls still work.
        await asyncio.sleep(0.35)
        assert "slow" in running.servicer.handled
        answer = await mux.call(request("next", "sleep 0"), 5)
        assert answer.body == b"next"
        assert running.servicer.streams_open == 1
        await mux.close()


async def test_a_lost_stream_fails_the_calls_in_flight_then_reconnects() -> None:
    running = Running()
    await running.server.start()
    port = running.port
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.initial_reconnect_backoff_ms", 100)]
    ) as ch:
        mux = client_for(ch, lanes=1)
        assert (await mux.call(request("warm", "sleep 0"), 5)).body == b"warm"
        in_flight = asyncio.ensure_future(mux.call(request("lost", "sleep 5"), 10))
        await asyncio.sleep(0.1)
        await running.server.stop(0)
        with pytest.raises(MuxUnavailable):
            await in_flight
        # A new server on the same port: the next call opens a new stream and gets through.
        async with Running(port) as again:
            for _ in range(50):
                try:
                    answer = await mux.call(request("back", "sleep 0"), 5)
                    break
                except MuxUnavailable:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("never reconnected")
            assert answer.body == b"back"
            assert again.servicer.handled == ["back"]
        await mux.close()


async def test_goaway_finishes_what_is_in_flight_and_moves_new_calls() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        in_flight = asyncio.ensure_future(mux.call(request("old", "sleep 0.2"), 5))
        await asyncio.sleep(0.05)
        assert running.servicer.streams_open == 1
        running.servicer.many.drain()
        # The call already sent is still answered on the old stream ...
        assert (await in_flight).body == b"old"
        # ... which the client then half-closed, so the server could end it.
        await asyncio.sleep(0.05)
        assert running.servicer.streams_open == 0
        # A draining server sends GOAWAY on every new stream too: a call made now is still
        # answered (it was sent before the GOAWAY arrived) and the stream then closes.
        answer = await mux.call(request("new", "sleep 0"), 5)
        assert answer.body == b"new"
        await mux.close()


async def test_close_waits_for_answers_in_flight() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        pending = asyncio.ensure_future(mux.call(request("last", "sleep 0.2"), 5))
        await asyncio.sleep(0.05)
        await mux.close(grace=5)
        assert (await pending).body == b"last"
        assert running.servicer.streams_open == 0


async def test_a_call_given_up_before_the_stream_connects_is_never_sent() -> None:
    running = Running()
    port = running.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = relay_pb2_grpc.RelayServiceStub(ch)
        mux: MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxClient(
            lambda requests: stub.CallMany(requests, wait_for_ready=True),
            RELAY_CALL_WIRE,
            method=METHOD,
            lanes=1,
        )
        # Nothing listens yet: both wait for the stream, and both give up.
        for i in range(2):
            with pytest.raises(MuxTimeout):
                await mux.call(request(f"stale{i}", "sleep 0"), 0.2)
        await running.server.start()
        try:
            answer = await mux.call(request("fresh", "sleep 0"), 10)
            assert answer.body == b"fresh"
            assert running.servicer.handled == ["fresh"]
        finally:
            await mux.close()
            await running.server.stop(0)


async def test_an_old_stream_is_replaced_without_losing_its_calls() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = relay_pb2_grpc.RelayServiceStub(ch)
        mux: MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxClient(
            stub.CallMany, RELAY_CALL_WIRE, method=METHOD, lanes=1, max_age=0.1
        )
        slow = asyncio.ensure_future(mux.call(request("on-old", "sleep 0.3"), 5))
        await asyncio.sleep(0.15)
        # Past its age: this call goes on a new stream while the old one finishes its call.
        assert (await mux.call(request("on-new", "sleep 0"), 5)).body == b"on-new"
        assert running.servicer.streams_open == 2
        assert (await slow).body == b"on-old"
        await asyncio.sleep(0.05)
        assert running.servicer.streams_open == 1
        await mux.close()


async def test_a_request_never_handed_to_a_failed_stream_goes_on_a_new_one() -> None:
    nobody = free_port()
    async with (
        Running() as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as live,
        grpc.aio.insecure_channel(f"127.0.0.1:{nobody}") as dead,
    ):
        stubs = [relay_pb2_grpc.RelayServiceStub(dead), relay_pb2_grpc.RelayServiceStub(live)]
        opened: list[int] = []

        def open_stream(requests: AsyncIterator[relay_pb2.RelayRequests]) -> Any:
            # The first stream goes where nothing listens (as to a relay that stopped
            # taking streams), every later one to the server.
            opened.append(len(opened))
            return stubs[min(len(opened) - 1, 1)].CallMany(requests)

        mux: MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxClient(
            open_stream, RELAY_CALL_WIRE, method=METHOD, lanes=1
        )
        answer = await mux.call(request("moved", "sleep 0"), 5)
        assert answer.body == b"moved"
        assert len(opened) == 2 and running.servicer.handled == ["moved"]
        await mux.close()

        # Nowhere to go at all: after a few fresh streams the caller hears it.
        stranded: MuxClient[relay_pb2.RelayRequest, relay_pb2.RelayResult] = MuxClient(
            stubs[0].CallMany, RELAY_CALL_WIRE, method=METHOD, lanes=1
        )
        with pytest.raises(MuxUnavailable):
            await stranded.call(request("nowhere", "sleep 0"), 5)
        await stranded.close()


async def test_calls_waiting_together_travel_in_one_message() -> None:
    async with Running() as running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        mux = client_for(ch, lanes=1)
        await mux.call(request("first", "sleep 0"), 5)  # the stream is up
        before = running.servicer.messages_in
        results = await asyncio.gather(
            *(mux.call(request(f"r{i}", f"sleep 0.0{i % 3}"), 5) for i in range(100))
        )
        # Each caller got its own answer...
        assert [r.body for r in results] == [f"r{i}".encode() for i in range(100)]
        assert running.servicer.calls_in == 101
        # ...and the hundred calls made in one go went in far fewer gRPC messages.
        assert running.servicer.messages_in - before < 20
        await mux.close()


async def test_a_lane_with_a_batch_waiting_is_not_joined() -> None:
    """Calls join a lane whose next batch is gathering only up to a batch's worth: past that
    (its stream not up yet, or its server slow to read), calls go to the other lanes."""
    port = free_port()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = relay_pb2_grpc.RelayServiceStub(ch)
        mux = MuxClient(
            lambda r: stub.CallMany(r, wait_for_ready=True),
            RELAY_CALL_WIRE,
            method=METHOD,
            lanes=2,
        )
        # No server yet: the first lane's stream cannot come up, so its calls wait.
        calls = [
            asyncio.ensure_future(mux.call(request(f"r{i}", "sleep 0"), 5))
            for i in range(BATCH_ITEMS + 5)
        ]
        await asyncio.sleep(0)
        lanes = [lane for lane in mux._lanes if lane is not None]
        assert len(lanes) == 2
        assert sorted(len(lane.pending) for lane in lanes) == [5, BATCH_ITEMS]
        async with Running(port):
            results = await asyncio.gather(*calls)
        assert [r.body.decode() for r in results] == [f"r{i}" for i in range(BATCH_ITEMS + 5)]
        await mux.close()
