"""A streaming relay call's own cost, as a gRPC call of its own (``Stream``) and multiplexed on
a lane (``StreamMany``, what the gateway uses), alternately in the same run: time to the first
chunk and CPU per call (both ends in this one process, on uvloop, no TLS), at 1 and 8 in
flight. The server answers each call with a few chunks at once and its ``StreamEnd``, so what
is measured is the call machinery alone (no provider, no auth).

    .venv/bin/python bench/stream_calls.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import uvloop

sys.path.insert(0, str(Path(__file__).parent))

from ttft import percentile

from unigate.grpc_mux import RELAY_STREAM, STREAM_WIRE, MuxStreamClient, MuxStreamServer
from unigate.v1 import relay_pb2, relay_pb2_grpc

CHUNKS = [relay_pb2.RelayChunk(data=b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')] * 5
END = relay_pb2.RelayChunk(end=relay_pb2.StreamEnd())
BLOCK = 50  # calls of one kind before switching to the other


async def answer(request: relay_pb2.RelayRequest) -> AsyncIterator[relay_pb2.RelayChunk]:
    for chunk in CHUNKS:
        yield chunk
    yield END


class Servicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self) -> None:
        self.mux: MuxStreamServer[
            relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
        ] = MuxStreamServer(answer, relay_pb2.RelayStreamDown, STREAM_WIRE, method=RELAY_STREAM)

    async def Stream(
        self, request: relay_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[relay_pb2.RelayChunk]:
        async for chunk in answer(request):
            yield chunk

    async def StreamMany(
        self,
        request_iterator: AsyncIterator[relay_pb2.RelayStreamUps],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[relay_pb2.RelayStreamDowns]:
        async for message in self.mux.serve(request_iterator):
            yield message


async def one(call: Any) -> float:
    """Read a call to its end; the seconds to its first chunk."""
    started = time.perf_counter()
    first = 0.0
    while isinstance(chunk := await call.read(), relay_pb2.RelayChunk):
        if not first:
            first = time.perf_counter() - started
        if chunk.HasField("end"):
            break
    return first


async def run(calls: int, in_flight: int) -> None:
    server = grpc.aio.server()
    relay_pb2_grpc.add_RelayServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        mux: MuxStreamClient[
            relay_pb2.RelayStreamUp, relay_pb2.RelayStreamDown, relay_pb2.RelayChunk
        ] = MuxStreamClient(
            stub.StreamMany, relay_pb2.RelayStreamUp, STREAM_WIRE, method=RELAY_STREAM
        )
        request = relay_pb2.RelayRequest(request_id="bench", body=b"{}", stream=True)
        kinds = {
            "Stream (own call)": lambda: stub.Stream(request, timeout=30),
            "StreamMany (lane)": lambda: mux.open(relay_pb2.RelayRequest(request_id="b"), 30),
        }
        firsts: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, float] = dict.fromkeys(kinds, 0.0)
        for start in kinds.values():  # warm both
            await asyncio.gather(*(one(start()) for _ in range(100)))
        for _ in range(calls // BLOCK):
            for kind, start in kinds.items():
                before = time.process_time()

                async def worker(n: int, start: Any = start, kind: str = kind) -> None:
                    for _ in range(n):
                        firsts[kind].append(await one(start()))

                await asyncio.gather(*(worker(BLOCK // in_flight) for _ in range(in_flight)))
                cpu[kind] += time.process_time() - before
        for kind, found in firsts.items():
            print(
                f"| {in_flight} | {kind} | {percentile(found, 0.5):.3f} "
                f"| {percentile(found, 0.99):.3f} | {cpu[kind] * 1000 / len(found):.3f} |",
                flush=True,
            )
        await mux.close()
    await server.stop(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| in flight | call | first chunk p50 ms | p99 ms | CPU ms per call (both ends) |")
    print("|---:|---|---:|---:|---:|")
    for in_flight in (1, 8):
        uvloop.run(run(args.calls, in_flight))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
