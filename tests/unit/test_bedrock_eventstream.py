"""AWS event-stream framing: the simulator's encoder against botocore's parser (which checks
both CRCs), through the relay's reader, in any split of the bytes."""

from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from unigate_relay.providers.bedrock.eventstream import (
    EventStreamReader,
    StreamDecodeError,
    StreamException,
)
from unigate_sim.bedrock import chunk_event, encode_message, exception_event

_names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
_values = st.text(max_size=40)


@given(st.dictionaries(_names, _values, max_size=4), st.binary(max_size=300))
def test_botocore_decodes_encoded_messages(headers: dict[str, str], payload: bytes) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(encode_message(headers, payload))
    messages = list(buffer)
    assert len(messages) == 1
    decoded = messages[0].to_response_dict()
    assert decoded["headers"] == headers and decoded["body"] == payload


EVENTS = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é✓"}},
    {"type": "message_stop"},
]

THROTTLED = "Too many requests, please wait before trying again."


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_reader_yields_events_in_any_split(sizes: list[int]) -> None:
    wire = b"".join(chunk_event(e) for e in EVENTS)
    wire += exception_event("throttlingException", THROTTLED)
    reader = EventStreamReader()
    out: list[object] = []
    position = 0
    for size in sizes:
        out.extend(reader.feed(wire[position : position + size]))
        position += size
    out.extend(reader.feed(wire[position:]))
    assert out == [
        *EVENTS,
        StreamException(
            "throttlingException", "Too many requests, please wait before trying again."
        ),
    ]


def test_corrupt_message_is_refused() -> None:
    wire = bytearray(chunk_event(EVENTS[0]))
    wire[20] ^= 0xFF  # a header byte: the message CRC no longer matches
    with pytest.raises(StreamDecodeError):
        list(EventStreamReader().feed(bytes(wire)))
    prelude = bytearray(chunk_event(EVENTS[0]))
    prelude[3] ^= 0x01  # the total length: the prelude CRC no longer matches
    with pytest.raises(StreamDecodeError):
        list(EventStreamReader().feed(bytes(prelude)))


def test_chunk_without_an_event_is_refused() -> None:
    bogus = encode_message(
        {":event-type": "chunk", ":message-type": "event", ":content-type": "application/json"},
        b'{"bytes": "not base64!"}',
    )
    with pytest.raises(StreamDecodeError):
        list(EventStreamReader().feed(bogus))
