"""A strict simulator of Alibaba DashScope's native text-generation API.

``POST /api/v1/services/aigc/text-generation/generation``
(https://help.aliyun.com/zh/model-studio/qwen-api-reference, errors from
https://help.aliyun.com/zh/model-studio/error-code), checked in this order:

* ``Authorization: Bearer <key>`` with a known key, else HTTP 401 ``InvalidApiKey``
  "Invalid API-key provided."; a key in ``arrears`` is HTTP 400 ``Arrearage``;
* a JSON object of ``model``, ``input`` and ``parameters`` only; ``model`` one of
  :data:`MODELS` (else 400 ``InvalidParameter`` "Model not exist."); ``input.messages`` a
  non-empty list of ``{role, content}`` with roles system (first only), user, assistant,
  tool, the last from the user or a tool; ``parameters.result_format`` ``text`` or
  ``message``; ``temperature`` in [0, 2), ``top_p`` in (0, 1], ``max_tokens`` positive;
  ``tools`` OpenAI-shaped. Violations are 400 ``InvalidParameter``.
* ``X-DashScope-SSE: enable`` asks for a stream: SSE events ``id:<n>``, ``event:result``,
  ``:HTTP_STATUS/200`` and ``data:`` with ``output.choices[0].message`` (the new text only
  with ``incremental_output``, else all of it so far), ``finish_reason`` ``"null"`` until the
  last event, and the running ``usage``. Without the header, one JSON answer.

Answers come from :mod:`unigate_sim.echo_reply`; ``usage`` is ``input_tokens``,
``output_tokens``, ``total_tokens``. ``app.state``: ``api_keys``, ``arrears`` (keys whose
account is overdue), ``calls`` (headers and body of each authenticated request) and
``fail_next`` (``(status, code, message)`` answered to the next authenticated requests).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.echo_reply import Reply, prompt_tokens, reply
from unigate_sim.openai.tokens import count_tokens, token_pieces

PATH: Final = "/api/v1/services/aigc/text-generation/generation"
MODELS: Final = frozenset({"qwen-turbo", "qwen-plus", "qwen-max", "qwen-long"})
_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"code": code, "message": message, "request_id": str(uuid.uuid4())})


def _invalid(message: str) -> Refusal:
    return Refusal(400, "InvalidParameter", message)


def check_body(body: Any) -> tuple[list[dict[str, Any]], dict[str, Any], list[tuple[str, Any]]]:
    """Messages, parameters and offered tools of a valid request."""
    if not isinstance(body, dict) or set(body) - {"model", "input", "parameters"}:
        raise _invalid("The request must be an object of model, input and parameters.")
    if body.get("model") not in MODELS:
        raise _invalid("Model not exist.")
    messages = (
        body.get("input", {}).get("messages") if isinstance(body.get("input"), dict) else None
    )
    if not isinstance(messages, list) or not messages:
        raise _invalid("Input messages must not be empty.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _invalid("Role must be in [system, user, assistant, tool].")
        if message["role"] == "system" and index != 0:
            raise _invalid("The system message must be the first message.")
        content = message.get("content")
        if not isinstance(content, str) or (not content and not message.get("tool_calls")):
            raise _invalid("Message content must be a non-empty string.")
    if messages[-1]["role"] not in ("user", "tool"):
        raise _invalid("The last message must be from the user or a tool.")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _invalid("parameters must be an object.")
    if parameters.get("result_format", "text") not in ("text", "message"):
        raise _invalid("result_format must be text or message.")
    temperature = parameters.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature < 2
    ):
        raise _invalid("Temperature should be in [0.0, 2.0).")
    top_p = parameters.get("top_p")
    if top_p is not None and not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise _invalid("Range of top_p should be (0.0, 1.0].")
    max_tokens = parameters.get("max_tokens")
    if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens > 0):
        raise _invalid("max_tokens must be a positive integer.")
    tools = []
    for tool in parameters.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid("tools must be [{type: function, function: {name, parameters}}].")
        tools.append((function["name"], function.get("parameters") or {}))
    if parameters.get("tool_choice") == "none":
        tools = []
    return messages, parameters, tools


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _message(answer: Reply, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if answer.is_call:
        message["tool_calls"] = [
            {
                "index": 0,
                "id": "call_" + secrets.token_hex(10),
                "type": "function",
                "function": {"name": answer.name, "arguments": answer.arguments},
            }
        ]
    return message


def _finish(answer: Reply) -> str:
    return "tool_calls" if answer.is_call else "stop"


class DashScopeSimulator:
    def __init__(self, app: Starlette) -> None:
        self.state = app.state

    async def generation(self, request: Request) -> Response:
        raw = await request.body()
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if key not in self.state.api_keys:
            return Response(
                error_body("InvalidApiKey", "Invalid API-key provided."),
                status_code=401,
                media_type="application/json",
            )
        if key in self.state.arrears:
            return Response(
                error_body(
                    "Arrearage",
                    "Access denied, please make sure your account is in good standing.",
                ),
                status_code=400,
                media_type="application/json",
            )
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.state.calls.append({"headers": headers, "body": body})
        try:
            if self.state.fail_next:
                raise Refusal(*self.state.fail_next.pop(0))
            messages, parameters, tools = check_body(body)
        except Refusal as exc:
            return Response(
                error_body(exc.code, exc.message),
                status_code=exc.status,
                media_type="application/json",
            )
        last = messages[-1]
        answer = reply(last["role"], last["content"], tools)
        prompt = prompt_tokens([(m["role"], m["content"]) for m in messages])
        request_id = str(uuid.uuid4())
        if headers.get("x-dashscope-sse") == "enable":
            incremental = parameters.get("incremental_output") is True
            return StreamingResponse(
                _stream(answer, prompt, request_id, incremental),
                media_type="text/event-stream",
            )
        return Response(
            orjson.dumps(
                {
                    "output": {
                        "choices": [
                            {
                                "finish_reason": _finish(answer),
                                "message": _message(answer, answer.text),
                            }
                        ]
                    },
                    "usage": _usage(prompt, answer.completion_tokens()),
                    "request_id": request_id,
                }
            ),
            media_type="application/json",
        )


async def _stream(
    answer: Reply, prompt: int, request_id: str, incremental: bool
) -> AsyncIterator[bytes]:
    pieces = [""] if answer.is_call else token_pieces(answer.text) or [""]
    done = 0
    so_far = ""
    for index, piece in enumerate(pieces):
        done += count_tokens(piece)
        so_far += piece
        last = index == len(pieces) - 1
        completion = answer.completion_tokens() if last else done
        data = {
            "output": {
                "choices": [
                    {
                        "message": _message(answer, piece if incremental else so_far)
                        if last
                        else {"role": "assistant", "content": piece if incremental else so_far},
                        "finish_reason": _finish(answer) if last else "null",
                    }
                ]
            },
            "usage": _usage(prompt, completion),
            "request_id": request_id,
        }
        yield (
            f"id:{index + 1}\nevent:result\n:HTTP_STATUS/200\ndata:".encode()
            + orjson.dumps(data)
            + b"\n\n"
        )


def create_dashscope_app(api_keys: set[str]) -> Starlette:
    app = Starlette()
    sim = DashScopeSimulator(app)
    app.router.routes.append(Route(PATH, sim.generation, methods=["POST"]))
    app.state.api_keys = set(api_keys)
    app.state.arrears = set()
    app.state.calls = []
    app.state.fail_next = []
    return app
