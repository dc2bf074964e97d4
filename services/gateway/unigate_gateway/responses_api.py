"""The gateway's side of the Responses API's stored state, per OpenAI's Responses reference:

* ``POST /v1/responses`` (and ``/v1/responses/input_tokens``) with a
  ``previous_response_id``: the earlier turns are looked up (auth: the key's user must own
  them, else the id is unknown, a 400 as OpenAI's) and sent to the relay with the channel
  that produced the previous response, which is tried first (a provider that keeps state
  continues there; any other channel gets the conversation replayed);
* after a response with ``store`` not false, it is saved with this turn's input items,
  before the client is answered (before the terminal event of a stream), so that a
  ``retrieve`` right after finds it; ``store: false`` saves nothing;
* ``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}`` and
  ``GET /v1/responses/{id}/input_items`` (cursor-paginated as OpenAI's lists: ``limit``
  1 to 100, default 20, ``order`` ``desc`` by default, ``after``/``before`` an item id),
  answered from the store; an id not the key's user's is a 404 like OpenAI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate import errors
from unigate.responses_items import input_items
from unigate_gateway.requests import ParsedCall, bearer_key

RESPONSES = "responses"
INPUT_TOKENS = "responses.input_tokens"
# The events that end a Responses stream, each carrying the whole response.
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class ResponsesTurn:
    """What the proxy needs to know of one Responses API request beyond the call itself."""

    store: bool
    previous_response_id: str
    # This turn's input items (JSON array, each with an id), as stored and listed.
    input_items: bytes
    # The earlier turns' items (JSON array) and the channel of the previous response.
    history: bytes = b""
    channel_id: int = 0


def not_found(response_id: str) -> errors.ClientFacingError:
    return errors.NotFound(f"Response with id '{response_id}' not found.")


def _fields(body: bytes) -> tuple[bool, str, Any]:
    """(``store``, ``previous_response_id``, ``input``) of a body already checked to be an
    object; a wrongly typed one is the client's 400."""
    data = orjson.loads(body)
    store = data.get("store", True)
    if store is None:
        store = True
    if not isinstance(store, bool):
        raise errors.InvalidRequest(
            "Invalid type for 'store': expected a boolean.", param="store", code="invalid_type"
        )
    previous = data.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise errors.InvalidRequest(
            "Invalid 'previous_response_id': expected a non-empty string.",
            param="previous_response_id",
            code="invalid_type",
        )
    return store, previous or "", data.get("input")


Lookup = Callable[[str, str, str, bool], Awaitable[Any]]


async def responses_turn(call: ParsedCall, lookup: Lookup, api_key: str, ip: str) -> ResponsesTurn:
    """The turn of a ``responses`` or ``responses.input_tokens`` call; ``lookup`` is the
    proxy's stored-response read (key, ip, id, with_history)."""
    store, previous, value = _fields(call.body)
    items = orjson.dumps(input_items(value))
    # Counting tokens stores nothing.
    store = store and call.endpoint == RESPONSES
    if not previous:
        return ResponsesTurn(store, "", items)
    found = await lookup(api_key, ip, previous, True)
    if found is None:
        raise errors.InvalidRequest(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return ResponsesTurn(store, previous, items, found.history, found.channel_id)


def final_response(tail: bytes) -> bytes | None:
    """The response object of a stream's final event (in the relay's held-back tail)."""
    for line in tail.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") in _FINAL_EVENTS:
            response = event.get("response")
            return orjson.dumps(response) if isinstance(response, dict) else None
    return None


def _page(items: list[Any], params: Any) -> dict[str, Any]:
    """One page of ``items`` per OpenAI's list parameters."""
    raw_limit = params.get("limit", "20")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise errors.InvalidRequest(
            f"Invalid 'limit': expected an integer between 1 and {MAX_PAGE}.", param="limit"
        )
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.InvalidRequest("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    ordered = list(reversed(items)) if order == "desc" else list(items)
    ids = [item.get("id") for item in ordered]
    start, stop = 0, len(ordered)
    for name in ("after", "before"):
        cursor = params.get(name)
        if cursor is None:
            continue
        if cursor not in ids:
            raise errors.InvalidRequest(
                f"Invalid '{name}': no input item with id '{cursor}'.", param=name
            )
        if name == "after":
            start = ids.index(cursor) + 1
        else:
            stop = ids.index(cursor)
    window = ordered[start:stop]
    data = window[:limit] if "before" not in params else window[-limit:]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(window) > len(data),
    }


Stored = Callable[[str, str, str], Awaitable[Any]]


def responses_routes(
    lookup: Lookup,
    delete: Stored,
    client_ip: Callable[[Request], str],
    error_response: Callable[[errors.ClientFacingError, str], Response],
    new_request_id: Callable[[], str],
) -> list[Route]:
    """The stored responses' read and delete routes; ``lookup`` and ``delete`` are the
    proxy's calls to auth (None / False: not the key's user's, or no such id)."""

    def keyed(
        handler: Callable[[Request, str, str], Awaitable[object]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = new_request_id()  # these calls make no ledger row
            try:
                api_key = bearer_key(request.headers.get("authorization"))
                if not api_key:
                    raise errors.AuthenticationFailed(
                        "You didn't provide an API key.", code="missing_api_key"
                    )
                body = await handler(request, api_key, request.path_params["response_id"])
            except errors.ClientFacingError as err:
                return error_response(err, request_id)
            return Response(
                body if isinstance(body, bytes) else orjson.dumps(body),
                media_type="application/json",
                headers={"X-Request-Id": request_id},
            )

        return endpoint

    async def retrieve(request: Request, api_key: str, response_id: str) -> object:
        if request.query_params.get("stream") in ("true", "1"):
            raise errors.InvalidRequest(
                "Streaming a stored response again is not supported here.", param="stream"
            )
        found = await lookup(api_key, client_ip(request), response_id, False)
        if found is None:
            raise not_found(response_id)
        return bytes(found.response)

    async def remove(request: Request, api_key: str, response_id: str) -> object:
        if not await delete(api_key, client_ip(request), response_id):
            raise not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def listed(request: Request, api_key: str, response_id: str) -> object:
        found = await lookup(api_key, client_ip(request), response_id, False)
        if found is None:
            raise not_found(response_id)
        items = orjson.loads(found.input_items)
        return _page(items if isinstance(items, list) else [], request.query_params)

    return [
        Route("/v1/responses/{response_id}", keyed(retrieve), methods=["GET"]),
        Route("/v1/responses/{response_id}", keyed(remove), methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", keyed(listed), methods=["GET"]),
    ]
