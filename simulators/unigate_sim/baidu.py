"""A strict simulator of Baidu's Qianfan (ERNIE) API with access-token authentication.

* ``POST /oauth/2.0/token?grant_type=client_credentials&client_id=…&client_secret=…``
  issues an access token for a known API key / secret key pair (``clients``); an unknown
  client id or a wrong secret is HTTP 401 ``{"error": "invalid_client", ...}``, another
  grant type 400 ``unsupported_grant_type`` (https://ai.baidu.com/ai-doc/REFERENCE/Ck3dwjhhu).
* ``POST /rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}?access_token=…`` and
  ``…/embeddings/{endpoint}``: a missing or unknown token is ``error_code`` 110 "Access token
  invalid or no longer valid", an expired one 111 "Access token expired", an unknown endpoint
  3 "Unsupported openapi method" — all, like every Qianfan error, in an HTTP 200 body.
* Chat bodies are checked as ERNIE does (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/jlil56u11):
  ``messages`` non-empty and of odd length, user (or function) at even indexes and assistant at
  odd ones, the first not a function, contents non-empty (an assistant's may be empty when it
  carries ``function_call``), a function message named; ``temperature`` in (0, 1],
  ``top_p`` in [0, 1], ``penalty_score`` in [1, 2], ``max_output_tokens`` in [2, 2048],
  ``stop`` at most 4 strings of at most 20 characters, ``system`` at most 1024 characters.
  Failures are 336003 with Qianfan's wording; a body that is not JSON is 336002. Fields ERNIE
  does not define are refused too (336003): the real API ignores most of them, but a relay that
  leaks OpenAI fields is a relay that mistranslates.
* Answers (:mod:`unigate_sim.echo_reply`) are ERNIE objects: ``result``, ``finish_reason``
  (``normal``, or ``function_call`` with a ``function_call``), ``usage``; streamed as SSE
  ``data:`` objects, one per token, with ``sentence_id``, ``is_end`` on the last and the
  running ``usage``.

``app.state``: ``clients`` (API key → secret key), ``tokens`` (access token → expiry as
``time.time()``; a test may age one), ``token_ttl`` (seconds, ``expires_in``), ``token_calls``
and ``calls`` (one dict per request: path, endpoint, query, body) and ``fail_next``
(``(error_code, error_msg)`` pairs answered, in a 200 body, to the next chat calls).
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

from unigate_sim.echo_reply import Reply, prompt_tokens, reply
from unigate_sim.openai.embeddings import embedding_vector
from unigate_sim.openai.tokens import count_tokens, token_pieces

CHAT_ENDPOINTS: Final = frozenset(
    {
        "completions_pro",
        "completions",
        "ernie-speed-128k",
        "ernie_speed",
        "eb-instant",
        "ernie-lite-8k",
    }
)
EMBEDDING_ENDPOINTS: Final = frozenset({"embedding-v1", "bge_large_zh", "bge_large_en", "tao_8k"})
EMBEDDING_DIMENSIONS: Final = 384
_CHAT_FIELDS: Final = frozenset(
    {
        "messages",
        "functions",
        "temperature",
        "top_p",
        "penalty_score",
        "stream",
        "system",
        "stop",
        "disable_search",
        "enable_citation",
        "max_output_tokens",
        "user_id",
        "tool_choice",
        "response_format",
    }
)

INVALID_TOKEN: Final = (110, "Access token invalid or no longer valid")
EXPIRED_TOKEN: Final = (111, "Access token expired")
UNSUPPORTED_METHOD: Final = (3, "Unsupported openapi method")


class Refusal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _error(code: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error_code": code, "error_msg": message}), media_type="application/json"
    )


def _invalid(message: str) -> Refusal:
    return Refusal(336003, message)


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages is empty")
    if len(messages) % 2 == 0:
        raise _invalid("the length of messages must be an odd number")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid("message format error")
        role, content = message.get("role"), message.get("content")
        if index % 2 == 0 and role not in ("user", "function"):
            raise _invalid(
                "the role of message with even index in the messages must be user or function"
            )
        if index % 2 == 1 and role != "assistant":
            raise _invalid("the role of message with odd index in the messages must be assistant")
        if index == 0 and role == "function":
            raise _invalid("the first message can not be a function message")
        if not isinstance(content, str):
            raise _invalid("message content must be a string")
        if role == "function" and not message.get("name"):
            raise _invalid("the name of a function message is required")
        carries_call = role == "assistant" and isinstance(message.get("function_call"), dict)
        if not content.strip() and not carries_call:
            raise _invalid("message content can not be empty")
    return messages


def _number(
    body: dict[str, Any], field: str, low: float, high: float, *, open_low: bool = False
) -> None:
    if field not in body:
        return
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{field} must be a number")
    if value > high or value < low or (open_low and value == low):
        raise _invalid(f"{field} is out of range")


def check_chat(body: Any) -> tuple[list[dict[str, Any]], str, list[tuple[str, Any]]]:
    """Messages, system prompt and offered functions of a valid ERNIE chat body."""
    if not isinstance(body, dict):
        raise Refusal(336002, "Invalid JSON")
    unknown = sorted(set(body) - _CHAT_FIELDS)
    if unknown:
        raise _invalid(f"invalid argument: {', '.join(unknown)}")
    messages = _check_messages(body.get("messages"))
    system = body.get("system", "")
    if not isinstance(system, str) or len(system) > 1024:
        raise _invalid("system is too long or not a string")
    _number(body, "temperature", 0.0, 1.0, open_low=True)
    _number(body, "top_p", 0.0, 1.0)
    _number(body, "penalty_score", 1.0, 2.0)
    if "max_output_tokens" in body:
        value = body["max_output_tokens"]
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 2048:
            raise _invalid("max_output_tokens is out of range")
    stop = body.get("stop", [])
    if (
        not isinstance(stop, list)
        or len(stop) > 4
        or any(not isinstance(s, str) or len(s) > 20 for s in stop)
    ):
        raise _invalid("stop must be at most 4 strings of at most 20 characters")
    functions = body.get("functions", [])
    if not isinstance(functions, list):
        raise _invalid("functions must be a list")
    offered = []
    for function in functions:
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
            or not isinstance(function.get("description"), str)
            or not isinstance(function.get("parameters"), dict)
        ):
            raise _invalid("a function needs a name, a description and parameters")
        offered.append((function["name"], function["parameters"]))
    return messages, system, offered


class BaiduSimulator:
    def __init__(self, app: Starlette) -> None:
        self.state = app.state

    def _authorize(self, request: Request) -> Refusal | None:
        token = request.query_params.get("access_token")
        expiry = self.state.tokens.get(token) if token else None
        if expiry is None:
            return Refusal(*INVALID_TOKEN)
        if expiry <= time.time():
            return Refusal(*EXPIRED_TOKEN)
        return None

    async def token(self, request: Request) -> Response:
        query = request.query_params
        self.state.token_calls.append(dict(query))
        if query.get("grant_type") != "client_credentials":
            return Response(
                orjson.dumps(
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "The authorization grant type is not supported",
                    }
                ),
                status_code=400,
                media_type="application/json",
            )
        client_id, secret = query.get("client_id", ""), query.get("client_secret", "")
        if client_id not in self.state.clients:
            return Response(
                orjson.dumps({"error": "invalid_client", "error_description": "unknown client id"}),
                status_code=401,
                media_type="application/json",
            )
        if not secrets.compare_digest(self.state.clients[client_id], secret):
            return Response(
                orjson.dumps(
                    {"error": "invalid_client", "error_description": "Client authentication failed"}
                ),
                status_code=401,
                media_type="application/json",
            )
        ttl = int(self.state.token_ttl)
        now = int(time.time())
        token = f"24.{secrets.token_hex(16)}.{ttl}.{now + ttl}.282335-{secrets.randbelow(10**8)}"
        self.state.tokens[token] = time.time() + ttl
        return Response(
            orjson.dumps(
                {
                    "refresh_token": "25." + secrets.token_hex(16),
                    "expires_in": ttl,
                    "session_key": secrets.token_hex(16),
                    "access_token": token,
                    "scope": "public brain_all_scope wenxinworkshop_mgr",
                    "session_secret": secrets.token_hex(16),
                }
            ),
            media_type="application/json",
        )

    async def _record(self, request: Request, kind: str) -> Any:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.state.calls.append(
            {
                "kind": kind,
                "endpoint": request.path_params["endpoint"],
                "query": dict(request.query_params),
                "body": body,
            }
        )
        return body

    async def chat(self, request: Request) -> Response:
        body = await self._record(request, "chat")
        refused = self._authorize(request)
        if refused is None and request.path_params["endpoint"] not in CHAT_ENDPOINTS:
            refused = Refusal(*UNSUPPORTED_METHOD)
        if refused is None and self.state.fail_next:
            refused = Refusal(*self.state.fail_next.pop(0))
        if refused is not None:
            return _error(refused.code, refused.message)
        try:
            messages, system, functions = check_chat(body)
        except Refusal as exc:
            return _error(exc.code, exc.message)
        last = messages[-1]
        answer = reply(last["role"], last["content"], functions)
        conversation = [("system", system)] if system else []
        conversation += [(m["role"], m["content"]) for m in messages]
        prompt = prompt_tokens(conversation)
        if body.get("stream"):
            return StreamingResponse(_stream(answer, prompt), media_type="text/event-stream")
        return Response(
            orjson.dumps(_answer(answer, prompt, answer.completion_tokens(), is_end=None)),
            media_type="application/json",
        )

    async def embeddings(self, request: Request) -> Response:
        body = await self._record(request, "embeddings")
        refused = self._authorize(request)
        endpoint = request.path_params["endpoint"]
        if refused is None and endpoint not in EMBEDDING_ENDPOINTS:
            refused = Refusal(*UNSUPPORTED_METHOD)
        if refused is not None:
            return _error(refused.code, refused.message)
        texts = body.get("input") if isinstance(body, dict) else None
        if (
            not isinstance(texts, list)
            or not 1 <= len(texts) <= 16
            or any(not isinstance(t, str) or not t for t in texts)
        ):
            return _error(336003, "input must be a list of 1 to 16 non-empty strings")
        tokens = sum(count_tokens(t) for t in texts)
        return Response(
            orjson.dumps(
                {
                    "id": "as-" + secrets.token_hex(5),
                    "object": "embedding_list",
                    "created": int(time.time()),
                    "data": [
                        {
                            "object": "embedding",
                            "embedding": embedding_vector(endpoint, t, EMBEDDING_DIMENSIONS),
                            "index": i,
                        }
                        for i, t in enumerate(texts)
                    ],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
            media_type="application/json",
        )


def _answer(
    answer: Reply,
    prompt: int,
    completion: int,
    *,
    is_end: bool | None,
    text: str | None = None,
    sentence: int = 0,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "as-" + secrets.token_hex(5),
        "object": "chat.completion",
        "created": int(time.time()),
        "result": answer.text if text is None else text,
        "is_truncated": False,
        "need_clear_history": False,
        "finish_reason": "function_call" if answer.is_call else "normal",
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    if is_end is not None:
        out["sentence_id"] = sentence
        out["is_end"] = is_end
    if answer.is_call:
        out["function_call"] = {"name": answer.name, "arguments": answer.arguments, "thoughts": ""}
    return out


async def _stream(answer: Reply, prompt: int) -> AsyncIterator[bytes]:
    if answer.is_call:
        final = _answer(answer, prompt, answer.completion_tokens(), is_end=True, text="")
        yield b"data: " + orjson.dumps(final) + b"\n\n"
        return
    pieces = token_pieces(answer.text) or [""]
    done = 0
    for index, piece in enumerate(pieces):
        done += count_tokens(piece)
        last = index == len(pieces) - 1
        event = _answer(
            answer,
            prompt,
            answer.completion_tokens() if last else done,
            is_end=last,
            text=piece,
            sentence=index,
        )
        if not last:
            event["finish_reason"] = ""
        yield b"data: " + orjson.dumps(event) + b"\n\n"


def create_baidu_app(clients: dict[str, str], token_ttl: int = 2592000) -> Starlette:
    """The simulator for API key → secret key pairs ``clients``."""
    app = Starlette()
    sim = BaiduSimulator(app)
    app.router.routes.extend(
        [
            Route("/oauth/2.0/token", sim.token, methods=["POST"]),
            Route(
                "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}", sim.chat, methods=["POST"]
            ),
            Route(
                "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/{endpoint}",
                sim.embeddings,
                methods=["POST"],
            ),
        ]
    )
    app.state.clients = dict(clients)
    app.state.tokens = {}
    app.state.token_ttl = token_ttl
    app.state.token_calls = []
    app.state.calls = []
    app.state.fail_next = []
    return app
