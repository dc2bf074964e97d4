"""A Responses request's earlier conversation, replayed as input.

The gateway resolves ``previous_response_id`` against the stored responses (owner checked)
and sends the earlier turns' items, oldest first, in ``RelayRequest.responses_history``
with the channel that produced the previous response (``responses_channel_id``). A
provider that keeps state (OpenAI's and Azure's Responses API) is sent the request as it
is when it goes to that same channel; anywhere else the items are put ahead of ``input``
and the id, which that provider never issued, is taken out (with the earlier items' ids and
reasoning items, which it could not resolve either).
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.responses_items import input_items, replayable
from unigate.v1 import relay_pb2


def with_history(request: relay_pb2.RelayRequest, *, keep_previous_id: bool) -> bytes:
    """``request``'s body with its history ahead of its input (as is when it has none)."""
    if not request.responses_history:
        return request.body
    try:
        body: Any = orjson.loads(request.body)
        history: Any = orjson.loads(request.responses_history)
    except orjson.JSONDecodeError:
        return request.body
    if not isinstance(body, dict) or not isinstance(history, list):
        return request.body
    current = body.get("input")
    if keep_previous_id:  # translated: everything is read as items anyway
        body["input"] = history + input_items(current)
    else:
        # A provider of its own: ids it never issued are not sent to it.
        replayed = [
            {k: v for k, v in item.items() if k != "id"}
            for item in replayable(history)
            if isinstance(item, dict)
        ]
        body["input"] = replayed + (
            [{"role": "user", "content": current}] if isinstance(current, str) else current or []
        )
        body.pop("previous_response_id", None)
    return orjson.dumps(body)


def native_body(request: relay_pb2.RelayRequest) -> bytes:
    """The body for a provider with its own Responses API: the previous response's id where
    that provider issued it (its channel), else the conversation replayed."""
    if not request.responses_history or request.channel_id == request.responses_channel_id:
        return request.body
    return with_history(request, keep_previous_id=False)
