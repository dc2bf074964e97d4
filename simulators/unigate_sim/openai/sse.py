"""Server-sent event frames, as OpenAI's streaming endpoints send them."""

from __future__ import annotations

from typing import Final

import orjson

from unigate_sim.openai.json_types import JSONObject

#: The frame that ends the chat and legacy completion streams.
DONE_FRAME: Final = b"data: [DONE]\n\n"


def data_frame(payload: JSONObject) -> bytes:
    """A ``data:``-only event (chat and legacy completion chunks)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event_frame(payload: JSONObject) -> bytes:
    """An event named after its payload's ``type`` (the Responses API, speech streams)."""
    name: str = payload["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
