"""AWS event-stream framing (``application/vnd.amazon.eventstream``), the encoding side,
which botocore does not ship.

Reference: AWS "Event stream encoding" (Transcribe / S3 Select / Bedrock): a message is a
prelude (total length and headers length, 4 bytes each, big-endian, then the CRC32 of those
8 bytes), headers (name length: 1 byte, name, value type: 1 byte — 7 is a string — value
length: 2 bytes, value), the payload, and the CRC32 of everything before it.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Final

import orjson

from unigate_sim.openai.json_types import JSONObject

_STRING: Final = 7
_PRELUDE: Final = 12
_CRC: Final = 4
# Bedrock pads chunk payloads with a "p" field so their sizes do not reveal the text.
_PADDING: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``."""
    encoded = _headers(headers)
    total = _PRELUDE + len(encoded) + len(payload) + _CRC
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", binascii.crc32(body))


def chunk_event(event: JSONObject) -> bytes:
    """A ``chunk`` event carrying one Anthropic stream event, as InvokeModelWithResponseStream
    sends it: ``{"bytes": base64(event JSON), "p": padding}``."""
    raw = orjson.dumps(event)
    payload = {"bytes": base64.b64encode(raw).decode(), "p": _PADDING[: len(raw) % 32 + 1]}
    return encode_message(
        {
            ":event-type": "chunk",
            ":content-type": "application/json",
            ":message-type": "event",
        },
        orjson.dumps(payload),
    )


def exception_event(kind: str, message: str) -> bytes:
    """An exception message (``throttlingException``, ``modelStreamErrorException``, …) that
    ends a stream."""
    return encode_message(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )


def converse_event(kind: str, event: JSONObject) -> bytes:
    """One ConverseStream event (``messageStart``, ``contentBlockDelta``, ``metadata``, …):
    the member's JSON itself as payload (no base64, unlike InvokeModel's chunks), padded."""
    raw = orjson.dumps(event)
    padded = {**event, "p": _PADDING[: len(raw) % 32 + 1]}
    return encode_message(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(padded),
    )
