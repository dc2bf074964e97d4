from __future__ import annotations

from unigate_relay.sse import SSESplitter, event_data


def test_events_split_across_arbitrary_chunk_boundaries() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n'
    for size in range(1, len(stream) + 1):
        splitter = SSESplitter()
        events: list[bytes] = []
        for i in range(0, len(stream), size):
            events.extend(splitter.feed(stream[i : i + size]))
        assert [event_data(e) for e in events] == [b'{"a":1}', b'{"b":2}', None, b"[DONE]"]
        assert splitter.rest() == b""


def test_multiline_data_is_joined() -> None:
    assert event_data(b"event: x\ndata: a\ndata: b") == b"a\nb"
