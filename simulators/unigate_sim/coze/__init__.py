"""A strict simulator of Coze's v3 chat API (``POST /v3/chat``).

Reference: Coze OpenAPI "Create a chat" and its SDKs (coze-py, coze-go): ``Authorization:
Bearer <token>``; the body's ``bot_id`` (a published bot) and ``user_id`` are required;
``additional_messages`` hold ``role`` ``user``/``assistant`` messages with ``content`` and
``content_type``; a non-streamed chat only starts the chat (``data.status: in_progress``, to
be polled) and needs ``auto_save_history: true``. Refusals are ``{"code", "msg"}`` (4100
"authentication is invalid", 4200 for a bot that does not exist, 4000 for a bad parameter).
A stream is SSE with ``event:``/``data:`` lines (no space after the colon, as Coze sends):
``conversation.chat.created``, ``conversation.chat.in_progress``, one
``conversation.message.delta`` per token of the answer, ``conversation.message.completed``
(the answer, then a ``verbose`` ``generate_answer_finish``), ``conversation.chat.completed``
with ``usage`` {``token_count``, ``output_count``, ``input_count``}, and ``done``
``data:"[DONE]"``. The bot echoes (``unigate_sim.echo_reply``), tokens counted as the OpenAI
simulator counts them.

``create_coze_app(tokens, bots)``; ``state.calls`` — per request ``{"path", "headers",
"body", "status", "usage"}``; ``state.fail_chat`` — ``(code, msg)`` pairs: the next streams
end in ``conversation.chat.failed`` with that ``last_error``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.echo_reply import prompt_tokens, reply
from unigate_sim.openai.tokens import count_tokens, token_pieces

_CONTENT_TYPES: Final = frozenset({"text", "object_string", "card"})


class CozeRefusal(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def response(self) -> Response:
        body = {"code": self.code, "msg": self.msg, "detail": {"logid": secrets.token_hex(16)}}
        return Response(orjson.dumps(body), self.status, media_type="application/json")


def _invalid(msg: str) -> CozeRefusal:
    return CozeRefusal(200, 4000, f"The requested parameter is invalid: {msg}")


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    raw = body.get("additional_messages")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid("additional_messages must be an array")
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _invalid(f"additional_messages[{i}].role must be user or assistant")
        content = message.get("content")
        if not isinstance(content, str) or not content:
            raise _invalid(f"additional_messages[{i}].content is empty")
        if message.get("content_type") not in _CONTENT_TYPES:
            raise _invalid(f"additional_messages[{i}].content_type is invalid")
        out.append((str(message["role"]), content))
    return out


def _frame(event: str, data: Any) -> bytes:
    return b"event:" + event.encode() + b"\ndata:" + orjson.dumps(data) + b"\n\n"


async def _chat(request: Request) -> Response:
    state = request.app.state
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() not in state.tokens:
        return CozeRefusal(401, 4100, "authentication is invalid").response()
    record: dict[str, Any] = {
        "path": request.url.path,
        "headers": dict(request.headers),
        "status": 0,
        "usage": None,
    }
    state.calls.append(record)
    try:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _invalid("the body is not JSON") from None
        record["body"] = body
        if not isinstance(body, dict):
            raise _invalid("the body must be an object")
        bot = body.get("bot_id")
        if not isinstance(bot, str) or not bot:
            raise _invalid("bot_id is required")
        if bot not in state.bots:
            raise CozeRefusal(
                200,
                4200,
                f"Requested resource bot_id={bot} does not exist. Ensure the resource ID is "
                "correct and the bot is published to the API.",
            )
        if not isinstance(body.get("user_id"), str) or not body["user_id"]:
            raise _invalid("user_id is required")
        messages = _messages(body)
        stream = body.get("stream") is True
        if not stream and body.get("auto_save_history") is False:
            raise _invalid("auto_save_history must be true when stream is false")
        chat = {
            "id": str(secrets.randbits(62)),
            "conversation_id": str(secrets.randbits(62)),
            "bot_id": bot,
            "created_at": int(time.time()),
        }
        if not stream:
            response: Response = Response(
                orjson.dumps({"code": 0, "msg": "", "data": {**chat, "status": "in_progress"}}),
                media_type="application/json",
            )
        else:
            last_role, last_text = messages[-1] if messages else ("user", "")
            answer = reply(last_role, last_text, []).text
            usage = {
                "input_count": prompt_tokens(messages),
                "output_count": count_tokens(answer),
            }
            usage["token_count"] = usage["input_count"] + usage["output_count"]
            record["usage"] = usage
            failure = state.fail_chat.pop(0) if state.fail_chat else None
            response = StreamingResponse(
                _events(chat, answer, usage, failure), media_type="text/event-stream"
            )
    except CozeRefusal as refusal:
        response = refusal.response()
    record["status"] = response.status_code
    return response


async def _events(
    chat: dict[str, Any],
    answer: str,
    usage: dict[str, int],
    failure: tuple[int, str] | None,
) -> AsyncIterator[bytes]:
    yield _frame("conversation.chat.created", {**chat, "status": "created"})
    yield _frame("conversation.chat.in_progress", {**chat, "status": "in_progress"})
    message = {
        "id": str(secrets.randbits(62)),
        "conversation_id": chat["conversation_id"],
        "bot_id": chat["bot_id"],
        "chat_id": chat["id"],
        "role": "assistant",
        "type": "answer",
        "content_type": "text",
    }
    if failure is not None:
        code, msg = failure
        failed = {**chat, "status": "failed", "last_error": {"code": code, "msg": msg}}
        yield _frame("conversation.chat.failed", failed)
        yield b'event:done\ndata:"[DONE]"\n\n'
        return
    for piece in token_pieces(answer):
        yield _frame("conversation.message.delta", {**message, "content": piece})
    yield _frame("conversation.message.completed", {**message, "content": answer})
    finish = {"msg_type": "generate_answer_finish", "data": "", "from_module": None}
    verbose = {**message, "type": "verbose", "content": orjson.dumps(finish).decode()}
    yield _frame("conversation.message.completed", verbose)
    done = {**chat, "status": "completed", "completed_at": int(time.time()), "usage": usage}
    yield _frame("conversation.chat.completed", done)
    yield b'event:done\ndata:"[DONE]"\n\n'


async def _unknown(request: Request, exc: Exception) -> Response:
    return Response(b"404 page not found", 404, media_type="text/plain")


def create_coze_app(tokens: set[str], bots: set[str]) -> Starlette:
    app = Starlette(
        routes=[Route("/v3/chat", _chat, methods=["POST"])],
        exception_handlers={404: _unknown, 405: _unknown},
    )
    app.state.tokens = set(tokens)
    app.state.bots = set(bots)
    app.state.calls = []
    app.state.fail_chat = []
    return app


__all__ = ["CozeRefusal", "create_coze_app"]
