"""The OpenAI routes One API declares but unigate does not serve (One API's
``RelayNotImplemented`` list in ``router/relay.go``, plus the two it relays and unigate does
not: ``/v1/edits``, a retired endpoint, and ``/v1/engines/{model}/embeddings``, the pre-2022
form of ``/v1/embeddings``). Each is answered 501 in OpenAI's error shape with One API's code
``api_not_implemented``, so a client learns at once that the gateway lacks it, rather than a
404 that reads like a typo in its base URL.

Unlike One API, no key is checked first: nothing is served, so there is nothing to guard, and
an unauthenticated caller learns only what the public route list says."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unigate import errors
from unigate.request_ids import new_request_id
from unigate_gateway.proxy import error_response

NOT_IMPLEMENTED: list[tuple[str, str]] = [
    ("POST", "/v1/edits"),
    ("POST", "/v1/engines/{model}/embeddings"),
    ("POST", "/v1/images/edits"),
    ("POST", "/v1/images/variations"),
    ("GET", "/v1/files"),
    ("POST", "/v1/files"),
    ("DELETE", "/v1/files/{id}"),
    ("GET", "/v1/files/{id}"),
    ("GET", "/v1/files/{id}/content"),
    ("POST", "/v1/fine_tuning/jobs"),
    ("GET", "/v1/fine_tuning/jobs"),
    ("GET", "/v1/fine_tuning/jobs/{id}"),
    ("POST", "/v1/fine_tuning/jobs/{id}/cancel"),
    ("GET", "/v1/fine_tuning/jobs/{id}/events"),
    ("DELETE", "/v1/models/{model:path}"),
    ("POST", "/v1/assistants"),
    ("GET", "/v1/assistants/{id}"),
    ("POST", "/v1/assistants/{id}"),
    ("DELETE", "/v1/assistants/{id}"),
    ("GET", "/v1/assistants"),
    ("POST", "/v1/assistants/{id}/files"),
    ("GET", "/v1/assistants/{id}/files/{file_id}"),
    ("DELETE", "/v1/assistants/{id}/files/{file_id}"),
    ("GET", "/v1/assistants/{id}/files"),
    ("POST", "/v1/threads"),
    ("GET", "/v1/threads/{id}"),
    ("POST", "/v1/threads/{id}"),
    ("DELETE", "/v1/threads/{id}"),
    ("POST", "/v1/threads/{id}/messages"),
    ("GET", "/v1/threads/{id}/messages/{message_id}"),
    ("POST", "/v1/threads/{id}/messages/{message_id}"),
    ("GET", "/v1/threads/{id}/messages/{message_id}/files/{file_id}"),
    ("GET", "/v1/threads/{id}/messages/{message_id}/files"),
    ("POST", "/v1/threads/{id}/runs"),
    ("GET", "/v1/threads/{id}/runs/{run_id}"),
    ("POST", "/v1/threads/{id}/runs/{run_id}"),
    ("GET", "/v1/threads/{id}/runs"),
    ("POST", "/v1/threads/{id}/runs/{run_id}/submit_tool_outputs"),
    ("POST", "/v1/threads/{id}/runs/{run_id}/cancel"),
    ("GET", "/v1/threads/{id}/runs/{run_id}/steps/{step_id}"),
    ("GET", "/v1/threads/{id}/runs/{run_id}/steps"),
]


async def _not_implemented(request: Request) -> Response:
    err = errors.ClientFacingError(
        f"{request.method} {request.url.path} is not implemented by this gateway.",
        status=501,
        type="invalid_request_error",
        code="api_not_implemented",
    )
    return error_response(err, new_request_id())


def not_implemented_routes() -> list[Route]:
    methods: dict[str, list[str]] = {}
    for method, path in NOT_IMPLEMENTED:
        methods.setdefault(path, []).append(method)
    return [Route(path, _not_implemented, methods=m) for path, m in methods.items()]
