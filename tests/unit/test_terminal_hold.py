"""The relay holds each outbound protocol's terminal frame back for the StreamEnd.

For every protocol a client may be answered in (OpenAI chat and legacy completions,
Anthropic Messages, the Responses API) the frames before the terminal one pass at once, and the
terminal frame (with anything after it) reaches the gateway only inside the ``StreamEnd``,
after the usage. Frames are made by the relay's own writers where it writes them (translated
families) and as the providers send them where it passes them through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import orjson
import pytest

from unigate.terminal_frames import terminal_at
from unigate.v1 import auth_pb2, common_pb2, events_pb2, relay_pb2
from unigate_relay.channels import ChannelConfigs
from unigate_relay.health_reporter import HealthReporter
from unigate_relay.providers.anthropic.stream import ChatStreamTranslator
from unigate_relay.providers.base import CallContext, Provider, stream_truncated
from unigate_relay.providers.openai_shapes import DONE_FRAME, chunk_frame
from unigate_relay.server import RelayService, TerminalHold
from unigate_relay.translate.responses_response import response_skeleton
from unigate_relay.translate.responses_stream import ResponsesStreamWriter
from unigate_relay.translate.stream import MessagesStreamWriter, event_frame
from unigate_relay.usage_record import UsageRecorder

USAGE = common_pb2.Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12)


def chat_frames(text: str) -> list[bytes]:
    """An OpenAI chat stream with usage, the content saying ``text``."""
    ids: dict[str, Any] = {"id": "chatcmpl-1", "model": "m", "created": 1}
    return [
        chunk_frame(**ids, delta={"role": "assistant", "content": ""}),
        chunk_frame(**ids, delta={"content": text}),
        chunk_frame(**ids, delta={}, finish_reason="stop"),
        chunk_frame(**ids, usage=USAGE),
        DONE_FRAME,
    ]


def completions_frames(text: str) -> list[bytes]:
    chunk = {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": text}]}
    return [b"data: " + orjson.dumps(chunk) + b"\n\n", DONE_FRAME]


def anthropic_frames(text: str) -> list[bytes]:
    """Anthropic's own event sequence, as passed through on an Anthropic channel."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    return [event_frame(e) for e in events]


def translated_messages_frames(text: str) -> list[bytes]:
    """Messages events as the relay writes them for a family without the Messages API."""
    writer = MessagesStreamWriter("m", 7)
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    written = writer.start() + writer.feed(chunk) + writer.finish(USAGE)
    return [e + b"\n\n" for e in written.split(b"\n\n") if e]


def responses_frames(text: str, final: str) -> list[bytes]:
    def ev(payload: dict[str, Any]) -> bytes:
        return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    return [
        ev({"type": "response.created", "response": {"status": "in_progress"}}),
        ev({"type": "response.output_text.delta", "delta": text}),
        ev({"type": final, "response": {"usage": {"input_tokens": 7, "output_tokens": 5}}}),
    ]


def translated_chat_frames(text: str) -> list[bytes]:
    """A native family's stream translated into OpenAI chunks (here Anthropic's translator),
    ending with the relay's own usage chunk and ``[DONE]``."""
    translator = ChatStreamTranslator(id="c", model="m", created=1, include_usage=True)
    out: list[bytes] = []
    for event in orjson.loads(b"[" + b",".join(_payloads(anthropic_frames(text))) + b"]"):
        out.extend(translator.feed(event))
    return out


def _payloads(frames: list[bytes]) -> list[bytes]:
    return [f.split(b"\ndata: ", 1)[1].strip() for f in frames]


def translated_responses_frames(text: str) -> list[bytes]:
    """Responses events as the relay writes them for a family without the Responses API."""
    writer = ResponsesStreamWriter(response_skeleton({}, "m", "resp_1"))
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    written = writer.start() + writer.feed(chunk) + writer.finish(USAGE)
    return [e + b"\n\n" for e in written.split(b"\n\n") if e]


TRANSLATED_CHAT = translated_chat_frames("data: [DONE]")
TRANSLATED_RESPONSES = translated_responses_frames('"type":"response.completed"')
TRANSLATED_MESSAGES = translated_messages_frames("message_stop")
# (endpoint, frames, index of the terminal frame). The text says the terminal marker, so a
# substring match would stop too early.
CASES = [
    ("chat.completions", chat_frames("say [DONE] now"), 4),
    ("chat.completions", TRANSLATED_CHAT, TRANSLATED_CHAT.index(DONE_FRAME)),
    ("completions", completions_frames("[DONE]"), 1),
    ("messages", anthropic_frames('"type":"message_stop"'), 5),
    ("messages", TRANSLATED_MESSAGES, len(TRANSLATED_MESSAGES) - 1),
    ("responses", responses_frames("response.completed", "response.completed"), 2),
    ("responses", responses_frames("response.failed", "response.incomplete"), 2),
    ("responses", responses_frames("x", "response.failed"), 2),
    ("responses", TRANSLATED_RESPONSES, len(TRANSLATED_RESPONSES) - 1),
]


@pytest.mark.parametrize(("endpoint", "frames", "terminal"), CASES)
def test_terminal_frame_found_in_each_protocol(
    endpoint: str, frames: list[bytes], terminal: int
) -> None:
    data = b"".join(frames)
    before = b"".join(frames[:terminal])
    assert terminal_at(endpoint, data) == len(before)
    # Content that merely mentions the marker is never taken for the end.
    assert terminal_at(endpoint, before) == -1
    # Non-streaming endpoints have no terminal frame.
    assert terminal_at("embeddings", data) == -1


@pytest.mark.parametrize(("endpoint", "frames", "terminal"), CASES)
def test_hold_passes_frames_before_the_end_at_once_and_puts_the_rest_in_stream_end(
    endpoint: str, frames: list[bytes], terminal: int
) -> None:
    hold = TerminalHold(endpoint)
    sent = [hold.split(relay_pb2.RelayChunk(data=f)).data for f in frames]
    # Every frame before the terminal one is passed unchanged, the moment it comes.
    assert sent[:terminal] == frames[:terminal]
    assert sent[terminal:] == [b""] * (len(frames) - terminal)
    end = relay_pb2.StreamEnd(usage=USAGE)
    hold.close(end)
    assert end.tail == b"".join(frames[terminal:])
    assert end.usage == USAGE


def test_terminal_frame_in_the_middle_of_a_chunk_is_split_off() -> None:
    frames = chat_frames("hello")
    hold = TerminalHold("chat.completions")
    # The provider's last read carried the finish chunk, the usage chunk and [DONE] together.
    first = hold.split(relay_pb2.RelayChunk(data=b"".join(frames[:2])))
    last = hold.split(relay_pb2.RelayChunk(data=b"".join(frames[2:])))
    assert first.data == b"".join(frames[:2])
    assert last.data == frames[2] + frames[3]
    end = relay_pb2.StreamEnd()
    hold.close(end)
    assert end.tail == DONE_FRAME


def test_an_error_after_the_terminal_frame_is_not_reported() -> None:
    hold = TerminalHold("chat.completions")
    hold.split(relay_pb2.RelayChunk(data=DONE_FRAME))
    end = relay_pb2.StreamEnd(error=stream_truncated(), usage=USAGE)
    hold.close(end)
    assert not end.HasField("error") and end.tail == DONE_FRAME


def test_a_stream_without_terminal_frame_keeps_its_error_and_no_tail() -> None:
    hold = TerminalHold("messages")
    assert hold.split(relay_pb2.RelayChunk(data=anthropic_frames("x")[0])).data
    end = relay_pb2.StreamEnd(error=stream_truncated())
    hold.close(end)
    assert end.HasField("error") and end.tail == b""


# ---- through RelayService.Stream, with a scripted adapter ---------------------------------


class Scripted(Provider):
    """An adapter that yields a given sequence of chunks."""

    family: ClassVar[str] = "scripted"
    channel_types: ClassVar[tuple[int, ...]] = (1,)
    endpoints: ClassVar[frozenset[str]] = frozenset({"chat.completions", "messages", "responses"})
    script: ClassVar[list[relay_pb2.RelayChunk]] = []

    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        raise NotImplementedError

    async def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        for chunk in self.script:
            yield chunk


class OneChannel(ChannelConfigs):
    def __init__(self) -> None:
        pass

    async def get(self, channel_id: int, version: int) -> auth_pb2.Channel:
        return auth_pb2.Channel(id=channel_id, type=1, config_version=version)

    def next_key(
        self, channel_id: int, cooling: Callable[[str], bool] = lambda _fp: False
    ) -> tuple[str, str]:
        return "k", "fp"

    def key_count(self, channel_id: int) -> int:
        return 1


class Outcomes(HealthReporter):
    def __init__(self) -> None:
        self.seen: list[relay_pb2.RelayError | None] = []

    def observe(
        self,
        channel_id: int,
        error: relay_pb2.RelayError | None,
        latency_ms: float = 0.0,
        key_fp: str = "",
    ) -> None:
        self.seen.append(error)

    def key_cooling(self, channel_id: int) -> Callable[[str], bool]:
        return lambda _fp: False


@pytest.mark.parametrize(
    ("endpoint", "frames", "terminal"),
    [CASES[0], CASES[3], CASES[5]],
)
async def test_relay_stream_sends_usage_before_the_terminal_frame(
    endpoint: str, frames: list[bytes], terminal: int
) -> None:
    Scripted.script = [
        relay_pb2.RelayChunk(data=b"".join(frames[: terminal - 1])),
        relay_pb2.RelayChunk(usage=USAGE),
        relay_pb2.RelayChunk(data=b"".join(frames[terminal - 1 :])),
        # The provider's connection failed after its last frame: not the client's concern.
        relay_pb2.RelayChunk(end=relay_pb2.StreamEnd(usage=USAGE, error=stream_truncated())),
    ]
    health = Outcomes()
    # Never started: the records queue in memory, where the test reads them.
    usage = UsageRecorder(None, max_pending=8)  # type: ignore[arg-type]
    service = RelayService([Scripted()], OneChannel(), None, health, usage)  # type: ignore[arg-type]
    request = relay_pb2.RelayRequest(
        endpoint=endpoint, channel_id=3, channel_type=1, stream=True, reservation_id="r1"
    )
    out = [c async for c in service.Stream(request, None)]  # type: ignore[arg-type]
    kinds = [c.WhichOneof("kind") for c in out]
    assert kinds == ["data", "usage", "data", "end"]
    assert out[0].data + out[2].data == b"".join(frames[:terminal])
    assert out[1].usage == USAGE
    end = out[3].end
    assert end.tail == b"".join(frames[terminal:]) and end.usage == USAGE
    assert not end.HasField("error") and health.seen == [None]
    # The relay's own record of the call (for a gateway that dies now) has the same usage.
    (note,) = usage._pending
    assert note.reservation_id == "r1"
    assert events_pb2.RelayUsage.FromString(note.record).usage == USAGE


# ---- the provider's usage, reported ahead of the end ----------------------------------------


def test_anthropic_stream_reports_its_final_usage_once_at_message_delta() -> None:
    state = ChatStreamTranslator(id="c", model="m", created=1, include_usage=False)
    events = orjson.loads(b"[" + b",".join(_payloads(anthropic_frames("hi"))) + b"]")
    reports = []
    for event in events:
        state.feed(event)
        reports.append(state.report_usage())
    # Nothing before message_delta (the output is not known yet), then once, then never again.
    assert reports[:4] == [None] * 4 and reports[5] is None
    final = reports[4]
    assert final is not None and (final.prompt_tokens, final.completion_tokens) == (7, 5)
    # A stream cut after message_delta (no message_stop) keeps that usage.
    cut = ChatStreamTranslator(id="c", model="m", created=1, include_usage=False)
    for event in events[:5]:
        cut.feed(event)
    assert not cut.finished and cut.final_usage() == final
