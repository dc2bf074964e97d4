"""Bedrock's response stream: AWS event-stream messages (``application/vnd.amazon.eventstream``)
read with botocore's parser, which checks the prelude and message CRCs.

Reference: AWS "InvokeModelWithResponseStream" (``ResponseStream``): a ``chunk`` event's
payload is ``{"bytes": base64(one Anthropic stream event as JSON)}``; an exception message
(``:message-type: exception``) names its type in ``:exception-type`` (``throttlingException``,
``modelStreamErrorException``, ``validationException``, ``internalServerException``,
``modelTimeoutException``, ``serviceUnavailableException``) with ``{"message"}`` as payload.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from unigate_relay.providers.anthropic.wire import JSONObject


@dataclass(frozen=True, slots=True)
class StreamException:
    """An exception message of the stream (it ends the stream)."""

    kind: str
    message: str


class StreamDecodeError(ValueError):
    """Bytes that are not a valid event stream (bad CRC, bad lengths, bad payload)."""


def exception_of(headers: dict[str, Any], payload: bytes) -> StreamException:
    """The exception an ``exception`` (or ``error``) message carries."""
    name = headers.get(":exception-type") or headers.get(":error-code") or "error"
    body = _json(payload)
    message = body.get("message") if isinstance(body, dict) else None
    return StreamException(str(name), str(message or headers.get(":error-message") or ""))


class ConverseEventReader:
    """Bytes of a ConverseStream answer in, its events out as ``{"type": <event type>,
    **payload}`` (a ConverseStream event's payload is the event's JSON itself, not base64),
    or the stream's exception."""

    def __init__(self) -> None:
        self._reader = EventStreamReader()

    def feed(self, data: bytes) -> Iterator[JSONObject | StreamException]:
        for headers, payload in self._reader.messages(data):
            kind = headers.get(":message-type")
            if kind in ("exception", "error"):
                yield exception_of(headers, payload)
                return
            if kind != "event":
                continue
            body = _json(payload)
            if not isinstance(body, dict):
                raise StreamDecodeError("a ConverseStream event is not a JSON object")
            yield {**body, "type": str(headers.get(":event-type") or "")}


def _json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


class EventStreamReader:
    """Bytes in as they arrive, Anthropic events (or the stream's exception) out."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def messages(self, data: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
        """The (headers, payload) of each whole message ``data`` completes."""
        self._buffer.add_data(data)
        try:
            for message in self._buffer:
                parsed = message.to_response_dict()
                yield parsed["headers"], parsed["body"]
        except ParserError as exc:
            raise StreamDecodeError(str(exc)) from exc

    def feed(self, data: bytes) -> Iterator[JSONObject | StreamException]:
        for headers, payload in self.messages(data):
            yield from self._decode(headers, payload)

    @staticmethod
    def _decode(headers: dict[str, Any], payload: bytes) -> Iterator[JSONObject | StreamException]:
        kind = headers.get(":message-type")
        if kind in ("exception", "error"):
            yield exception_of(headers, payload)
            return
        if kind != "event" or headers.get(":event-type") != "chunk":
            return
        body = _json(payload)
        encoded = body.get("bytes") if isinstance(body, dict) else None
        try:
            event = _json(base64.b64decode(encoded, validate=True)) if encoded else None
        except (binascii.Error, ValueError):
            event = None
        if not isinstance(event, dict):
            raise StreamDecodeError("a chunk event does not carry an Anthropic event")
        yield event
