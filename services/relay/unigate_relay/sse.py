"""Splitting a server-sent-events byte stream into whole events, without decoding it."""

from __future__ import annotations


class SSESplitter:
    """Feed raw bytes; get back complete events (without their blank-line terminator)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()
        return [p for p in parts if p.strip()]

    def rest(self) -> bytes:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest, self._buf = self._buf.strip(), b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The ``data:`` payload of an event (joined across lines), or None if it has none."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].lstrip()
    lines = [ln[5:].lstrip() for ln in event.split(b"\n") if ln.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
