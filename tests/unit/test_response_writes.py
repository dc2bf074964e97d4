"""The gateway's transport sends a response's head with the first bytes of its body (one
system call instead of two), never reorders bytes, and never holds a head past the current
step of the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from unigate_gateway.edge import LingeringTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Records each call that would be a system call of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []
        self.closing = False
        self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.calls.append(b"".join(bytes(d) for d in list_of_data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def test_head_and_body_go_out_together() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(HEAD)
    assert inner.calls == []
    assert t.get_write_buffer_size() == len(HEAD)  # uvicorn's flow control sees it
    t.write(b"{}")
    assert inner.calls == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert inner.calls == [HEAD + b"{}"]


async def test_a_head_alone_goes_out_at_the_end_of_the_step() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(HEAD)
    await asyncio.sleep(0)
    assert inner.calls == [HEAD]
    t.write(b"data: 1\n\n")
    assert inner.calls == [HEAD, b"data: 1\n\n"]


async def test_interim_answers_are_not_held() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert inner.calls == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_close_and_eof_send_a_held_head_first() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(HEAD)
    t.write_eof()
    assert inner.calls == [HEAD] and inner.eof
    inner2 = RecordingTransport()
    t2 = LingeringTransport(inner2, asyncio.get_running_loop())
    t2.write(HEAD)
    t2.close()
    assert inner2.calls == [HEAD]


async def test_a_head_is_dropped_if_the_connection_is_gone() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(HEAD)
    inner.closing = True
    await asyncio.sleep(0)
    assert inner.calls == []


async def test_order_is_kept_with_writelines() -> None:
    inner = RecordingTransport()
    t = LingeringTransport(inner, asyncio.get_running_loop())
    t.write(HEAD)
    t.writelines([b"a", b"b"])
    assert b"".join(inner.calls) == HEAD + b"ab"
