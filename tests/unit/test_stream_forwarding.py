"""The gateway's stream forwarding (``Proxy._forward``): data chunks already received from a
lane go to the client in one write, whole events in their order; a usage or end chunk read
ahead is still handled in its turn, and the terminal frame ends the joining."""

from __future__ import annotations

import collections
from typing import Any

import grpc

from unigate.grpc_mux import MuxStream
from unigate.v1 import auth_pb2, common_pb2, relay_pb2
from unigate_gateway.proxy import CallRecord, Proxy
from unigate_gateway.requests import ParsedCall


def event(text: str) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"%s"}}]}\n\n' % text.encode()


class _Lane:
    """A stream call whose chunks have all arrived (what ``MuxStream`` reads from)."""

    def __init__(self, chunks: list[relay_pb2.RelayChunk]) -> None:
        self.chunks = collections.deque(chunks)
        self.cancelled = False

    async def read(self) -> Any:
        return self.chunks.popleft() if self.chunks else grpc.aio.EOF

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def abandon(self) -> None:
        pass


def record() -> CallRecord:
    call = ParsedCall(
        endpoint="chat.completions",
        body=b"{}",
        model="gpt-4o-mini",
        stream=True,
        include_usage=False,
        max_tokens=0,
        estimated_prompt_tokens=1,
    )
    return CallRecord("req-1", call, "127.0.0.1", auth_pb2.AuthorizeResponse())


async def forwarded(chunks: list[relay_pb2.RelayChunk]) -> tuple[list[bytes], CallRecord]:
    proxy = object.__new__(Proxy)
    published: list[CallRecord] = []
    proxy._publish = published.append  # type: ignore[method-assign,assignment]
    rec = record()
    lane = _Lane(chunks[1:])
    writes = [w async for w in proxy._forward(rec, MuxStream(lane), chunks[0], False)]  # type: ignore[arg-type]
    assert published == [rec] and not lane.cancelled
    return writes, rec


async def test_chunks_already_here_go_out_in_one_write_in_order() -> None:
    usage = common_pb2.Usage(prompt_tokens=3, completion_tokens=4)
    end = relay_pb2.StreamEnd(usage=usage, tail=b"data: [DONE]\n\n")
    writes, rec = await forwarded(
        [
            relay_pb2.RelayChunk(data=event("a")),
            relay_pb2.RelayChunk(data=event("b")),
            relay_pb2.RelayChunk(data=event("c")),
            # Read ahead while joining: handled in its turn, then the joining goes on.
            relay_pb2.RelayChunk(usage=usage),
            relay_pb2.RelayChunk(data=event("d")),
            relay_pb2.RelayChunk(end=end),
        ]
    )
    assert writes == [event("a") + event("b") + event("c"), event("d"), b"data: [DONE]\n\n"]
    assert rec.forwarded == [event("a"), event("b"), event("c"), event("d")]
    assert rec.usage == usage


async def test_nothing_is_joined_after_a_terminal_frame() -> None:
    # A relay that passes [DONE] as data (not held back): what follows is not joined to it.
    writes, _ = await forwarded(
        [
            relay_pb2.RelayChunk(data=event("a") + b"data: [DONE]\n\n"),
            relay_pb2.RelayChunk(data=event("late")),
            relay_pb2.RelayChunk(end=relay_pb2.StreamEnd()),
        ]
    )
    assert writes[0] == event("a") + b"data: [DONE]\n\n"
