"""Where a stream's terminal frame is, in each protocol a client may be answered in.

A stream ends for its client with one frame: ``data: [DONE]`` (OpenAI chat and legacy
completions), ``event: message_stop`` (Anthropic Messages), the Responses API's
``response.completed`` / ``response.incomplete`` / ``response.failed`` event, or Gemini's
chunk whose candidate carries a ``finishReason`` (or whose prompt was blocked,
``promptFeedback.blockReason``): Google's SDK reads on to the end of the body, but a client
that has the finishing chunk has the whole answer and may leave. Clients (the
OpenAI and Anthropic SDKs, LangChain, plain SSE readers) close the response as soon as they
read it, so the relay holds that frame back until it has sent the stream's usage, and the
gateway never sends anything after it. Both find it here.

The bytes searched are whole SSE events (``\\n\\n``-terminated, as the relay forwards them).
A cheap substring test rules out almost every chunk; only an event that contains the marker
is looked at closely, so a completion that merely *says* "[DONE]" is not taken for the end.
"""

from __future__ import annotations

import orjson

from unigate.gemini_endpoints import GENERATE as GEMINI_GENERATE

# Each protocol's marker (a substring every terminal event contains) and its terminal types.
_DONE = b"[DONE]"
_MESSAGES_TYPES = frozenset({"message_stop"})
_RESPONSES_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})
_MARKERS: dict[str, tuple[bytes, ...]] = {
    "chat.completions": (_DONE,),
    "completions": (_DONE,),
    "messages": (b"message_stop",),
    "responses": (b"response.completed", b"response.incomplete", b"response.failed"),
    GEMINI_GENERATE: (b"finishReason", b"blockReason"),
}
_TYPES: dict[str, frozenset[str]] = {"messages": _MESSAGES_TYPES, "responses": _RESPONSES_TYPES}


def _payload(event: bytes) -> bytes:
    """The ``data:`` payload of one event (lines joined), stripped."""
    lines = [ln[5:].strip() for ln in event.splitlines() if ln.startswith(b"data:")]
    return b"\n".join(lines)


def _is_terminal(endpoint: str, event: bytes) -> bool:
    payload = _payload(event)
    if endpoint in ("chat.completions", "completions"):
        return payload == _DONE
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    if endpoint == GEMINI_GENERATE:
        return _gemini_finished(parsed)
    return isinstance(parsed, dict) and parsed.get("type") in _TYPES[endpoint]


def _gemini_finished(chunk: object) -> bool:
    if not isinstance(chunk, dict):
        return False
    feedback = chunk.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return True
    candidates = chunk.get("candidates")
    return isinstance(candidates, list) and any(
        isinstance(c, dict) and bool(c.get("finishReason")) for c in candidates
    )


def terminal_at(endpoint: str, data: bytes) -> int:
    """The offset in ``data`` of the event that ends the stream for its client, or -1 when
    ``data`` holds none (or ``endpoint`` does not stream)."""
    markers = _MARKERS.get(endpoint)
    if markers is None or not any(m in data for m in markers):
        return -1
    start = 0
    while start < len(data):
        end = data.find(b"\n\n", start)
        stop = len(data) if end < 0 else end + 2
        event = data[start:stop]
        if any(m in event for m in markers) and _is_terminal(endpoint, event):
            return start
        start = stop
    return -1
