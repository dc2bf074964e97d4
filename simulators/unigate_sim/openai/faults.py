"""Fault injection: what a test asks the simulator to do to the next requests instead of (or
on top of) serving them normally — an error with headers, a hang, a stream that stops early
or trickles — and what the simulator saw of streams whose client went away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from unigate_sim.openai.json_types import JSONObject


@dataclass
class Fault:
    """One injected behaviour, consumed by one authenticated request.

    ``status`` > 0 answers with that status and ``body`` (and ``headers``) after ``delay``
    seconds. With ``status`` 0 the request is served normally, but only after ``delay``
    seconds (a hang, when long), and a stream stops after ``cut_after`` frames without its
    ``[DONE]`` and/or waits ``frame_delay`` seconds before each frame. ``no_usage`` serves a
    chat completion without any usage (no ``usage`` field, no usage chunk whatever
    ``stream_options`` asked), as some OpenAI-compatible servers answer. ``stall_before_last``
    sends a stream's every frame but its last (``[DONE]``) and then hangs until the client
    leaves: the usage has been reported, the stream never ends. ``stall_after_last`` sends
    every frame and then holds the response open without ending it.
    """

    status: int = 0
    body: JSONObject = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut_after: int | None = None
    frame_delay: float = 0.0
    no_usage: bool = False
    stall_before_last: bool = False
    stall_after_last: bool = False


@dataclass
class StreamEnding:
    """How a stream the simulator sent ended: completely, cut by a fault, or abandoned by its
    client (``at`` is time.monotonic() when the simulator noticed)."""

    how: str
    frames_sent: int
    at: float


async def paced_frames(
    frames: Sequence[bytes], fault: Fault | None, endings: list[StreamEnding]
) -> AsyncIterator[bytes]:
    sent = 0
    how = "abandoned"
    try:
        for frame in frames:
            if fault is not None and fault.cut_after is not None and sent >= fault.cut_after:
                how = "cut"
                return
            if fault is not None and fault.stall_before_last and sent == len(frames) - 1:
                how = "stalled"
                await asyncio.Event().wait()
            if fault is not None and fault.frame_delay:
                await asyncio.sleep(fault.frame_delay)
            yield frame
            sent += 1
        how = "complete"
        if fault is not None and fault.stall_after_last:
            await asyncio.Event().wait()
    finally:
        endings.append(StreamEnding(how, sent, time.monotonic()))
