"""A strict simulator of AI Proxy Library's ask API (``POST /api/library/ask``).

Reference: One API's adaptor (``relay/adaptor/aiproxy``) and aiproxy.io's library clients
(the ask call of docs.aiproxy.io/dev/library): ``Authorization: Bearer <key>``; the body is
exactly ``{"model", "query", "libraryId", "stream"}`` (strings, ``stream`` a boolean; the
library id a string or a whole number); an answer ``{"success": true, "answer",
"documents": [{"title", "url"}], "errCode": 0, "message": ""}``; a stream SSE ``data:``
lines of ``{"content", "finish", "model", "documents"}``, one per token of the answer, then
``finish: true`` with the documents. A refusal is ``{"success": false, "errCode",
"message"}`` — the shape One API reads; aiproxy.io does not document its codes publicly, so
the simulator uses the HTTP status as the code: 401 for a missing or unknown key, 400 for a
body that is not exactly the ask body, 404 for a library that is not the key's.

The library answers ``"Echo: "`` and the question (``unigate_sim.echo_reply``).

``create_aiproxy_library_app(keys, libraries)`` — ``libraries`` maps a library id to its
documents; ``state.calls`` — per request ``{"path", "headers", "body", "status"}``;
``state.fail_next`` — ``(status, body)`` answers sent instead of the next ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.echo_reply import reply
from unigate_sim.openai.tokens import token_pieces

ASK_FIELDS: Final = frozenset({"model", "query", "libraryId", "stream"})
Document = dict[str, str]


class LibraryRefusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def response(self) -> Response:
        body = {"success": False, "errCode": self.status, "message": self.message}
        return Response(orjson.dumps(body), self.status, media_type="application/json")


def _library(body: Any) -> str:
    """The ask body's library id, once every field is checked."""
    if not isinstance(body, dict):
        raise LibraryRefusal(400, "request body must be a JSON object")
    unknown = sorted(set(body) - ASK_FIELDS)
    if unknown:
        raise LibraryRefusal(400, f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(ASK_FIELDS - set(body))
    if missing:
        raise LibraryRefusal(400, f"missing field(s): {', '.join(missing)}")
    for name in ("model", "query"):
        if not isinstance(body[name], str) or not body[name].strip():
            raise LibraryRefusal(400, f"{name} must be a non-empty string")
    if not isinstance(body["stream"], bool):
        raise LibraryRefusal(400, "stream must be a boolean")
    library = body["libraryId"]
    if isinstance(library, int) and not isinstance(library, bool):
        library = str(library)
    if not isinstance(library, str) or not library:
        raise LibraryRefusal(400, "libraryId must be a library id")
    return library


def _frame(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _events(model: str, answer: str, documents: list[Document]) -> AsyncIterator[bytes]:
    for piece in token_pieces(answer):
        yield _frame({"content": piece, "finish": False, "model": model, "documents": []})
    yield _frame({"content": "", "finish": True, "model": model, "documents": documents})


async def _ask(request: Request) -> Response:
    state = request.app.state
    record: dict[str, Any] = {
        "path": request.url.path,
        "headers": dict(request.headers),
        "body": None,
        "status": 0,
    }
    state.calls.append(record)
    try:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in state.keys:
            raise LibraryRefusal(401, "Invalid API Key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise LibraryRefusal(400, "request body is not valid JSON") from None
        record["body"] = body
        library = _library(body)
        if library not in state.libraries:
            raise LibraryRefusal(404, f"library {library} does not exist or is not yours")
        if state.fail_next:
            status, injected = state.fail_next.pop(0)
            response: Response = Response(
                orjson.dumps(injected), status, media_type="application/json"
            )
        else:
            answer = reply("user", body["query"], []).text
            documents = list(state.libraries[library])
            if body["stream"]:
                response = StreamingResponse(
                    _events(body["model"], answer, documents), media_type="text/event-stream"
                )
            else:
                found = {
                    "success": True,
                    "answer": answer,
                    "documents": documents,
                    "errCode": 0,
                    "message": "",
                }
                response = Response(orjson.dumps(found), media_type="application/json")
    except LibraryRefusal as refusal:
        response = refusal.response()
    record["status"] = response.status_code
    return response


async def _unknown(request: Request, exc: Exception) -> Response:
    return LibraryRefusal(404, f"no route for {request.method} {request.url.path}").response()


def create_aiproxy_library_app(
    keys: set[str], libraries: Mapping[str, list[Document]]
) -> Starlette:
    app = Starlette(
        routes=[Route("/api/library/ask", _ask, methods=["POST"])],
        exception_handlers={404: _unknown, 405: _unknown},
    )
    app.state.keys = set(keys)
    app.state.libraries = {k: list(v) for k, v in libraries.items()}
    app.state.calls = []
    app.state.fail_next = []
    return app


__all__ = ["LibraryRefusal", "create_aiproxy_library_app"]
