"""The gateway's Anthropic Message Batches routes (Anthropic's API reference, "Message
Batches"), as the ``anthropic`` SDK's ``client.messages.batches`` calls them:

* ``POST /v1/messages/batches`` (create), ``GET /v1/messages/batches`` (list: ``limit``,
  ``before_id``, ``after_id``), ``GET /v1/messages/batches/{id}`` (retrieve),
  ``POST .../{id}/cancel``, ``GET .../{id}/results`` (the ``.jsonl`` file),
  ``DELETE .../{id}``;
* the key in ``x-api-key`` or ``Authorization: Bearer``, as on ``/v1/messages``; every error
  in Anthropic's shape.

The gateway checks a creation's body (what Anthropic refuses at creation, and what the
reservation needs of each request: ``model``, ``max_tokens``, ``messages``) and counts each
request's prompt; auth does the rest (``unigate_auth.message_batches``: limits, the
reservation, the batch's owner and channel, the upstream calls, billing). A batch object's
``results_url`` names the provider; it is rewritten to this gateway's own, which the SDK's
``results()`` follows.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate import errors
from unigate.errors import InvalidRequest
from unigate.request_ids import new_request_id
from unigate.v1 import auth_pb2
from unigate_gateway.anthropic_api import MESSAGES, check_fields, messages_key, request_id_headers
from unigate_gateway.requests import asks_long_cache, counted_prompt

#: Anthropic's limits on a batch (its reference: up to 100,000 requests; custom ids of 1-64
#: letters, digits, hyphens and underscores, unique within the batch).
MAX_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

Ask = Callable[[auth_pb2.MessageBatchRequest], Awaitable[auth_pb2.MessageBatchReply]]


def parse_batch(body: bytes) -> list[auth_pb2.MessageBatchItem]:
    """A creation body's requests, checked; Anthropic's 400 wording for what it refuses."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise InvalidRequest("There was an error parsing the body as JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(data) - {"requests"})
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: Extra inputs are not permitted", param=unknown[0])
    requests = data.get("requests")
    if not isinstance(requests, list):
        raise InvalidRequest("requests: Field required", param="requests")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        raise InvalidRequest(
            f"requests: List should have between 1 and {MAX_REQUESTS} items", param="requests"
        )
    seen: set[str] = set()
    items = []
    for i, request in enumerate(requests):
        where = f"requests.{i}"
        if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
            raise InvalidRequest(f"{where}: each request takes exactly custom_id and params")
        custom_id = request["custom_id"]
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise InvalidRequest(
                f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            raise InvalidRequest(f"{where}.custom_id: duplicate custom_id {custom_id!r}")
        seen.add(custom_id)
        params = request["params"]
        if not isinstance(params, dict):
            raise InvalidRequest(f"{where}.params: Input should be an object")
        try:
            model, max_tokens = check_fields(params, needs_max_tokens=True)
        except InvalidRequest as err:
            raise InvalidRequest(f"{where}.params.{err.message}") from None
        raw = orjson.dumps(params)
        items.append(
            auth_pb2.MessageBatchItem(
                custom_id=custom_id,
                model=model,
                estimated_prompt_tokens=counted_prompt(MESSAGES, params, model, raw),
                max_tokens=max_tokens,
                long_cache_writes=asks_long_cache(raw),
            )
        )
    return items


def _own_results_url(obj: Any, base: str) -> None:
    if isinstance(obj, dict) and obj.get("type") == "message_batch" and obj.get("results_url"):
        obj["results_url"] = f"{base}/v1/messages/batches/{obj['id']}/results"


def with_own_urls(body: bytes, base: str) -> bytes:
    """A batch object (or a page of them) with ``results_url`` pointing at this gateway."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(data, dict):
        return body
    _own_results_url(data, base)
    page = data.get("data")
    for obj in page if isinstance(page, list) else ():
        _own_results_url(obj, base)
    return orjson.dumps(data)


def _limit(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest("limit: Input should be a valid integer", param="limit") from None
    if not 1 <= value <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000", param="limit")
    return value


def batch_routes(
    ask: Ask,
    ip_of: Callable[[Request], str],
    error_response: Callable[[errors.ClientFacingError, str, str], Response],
) -> list[Route]:
    async def handle(request: Request, op: str) -> Response:
        request_id = new_request_id()
        try:
            api_key = messages_key(MESSAGES, request.headers)
            if not api_key:
                raise errors.AuthenticationFailed(
                    "x-api-key header is required", code="missing_api_key"
                )
            call = auth_pb2.MessageBatchRequest(
                api_key=api_key, client_ip=ip_of(request), request_id=request_id, op=op
            )
            batch_id = request.path_params.get("batch_id", "")
            if batch_id and not _BATCH_ID.match(batch_id):
                raise errors.NotFound(f"Message Batch {batch_id[:64]} not found.")
            call.batch_id = batch_id
            if op == "create":
                call.body = await request.body()
                call.items.extend(parse_batch(call.body))
            elif op == "list":
                params = request.query_params
                call.limit = _limit(params.get("limit"))
                call.before_id = params.get("before_id", "")
                call.after_id = params.get("after_id", "")
            reply = await ask(call)
            if not reply.allowed:
                raise errors.ClientFacingError.from_proto(reply.error)
        except errors.ClientFacingError as err:
            response = error_response(err, request_id, MESSAGES)
        else:
            body = reply.body
            if op != "results":
                body = with_own_urls(body, str(request.base_url).rstrip("/"))
            response = Response(
                body,
                status_code=reply.http_status,
                media_type=reply.content_type or "application/json",
            )
        response.headers.update(request_id_headers(MESSAGES, request_id))
        return response

    def route(path: str, op: str, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return await handle(request, op)

        return Route(path, endpoint, methods=[method])

    base = "/v1/messages/batches"
    return [
        route(base, "create", "POST"),
        route(base, "list", "GET"),
        route(base + "/{batch_id}", "retrieve", "GET"),
        route(base + "/{batch_id}", "delete", "DELETE"),
        route(base + "/{batch_id}/cancel", "cancel", "POST"),
        route(base + "/{batch_id}/results", "results", "GET"),
    ]
