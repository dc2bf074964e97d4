"""A strict simulator of Tencent Hunyuan's ``ChatCompletions`` (Tencent Cloud API 3.0).

Every request is authenticated the way API 3.0 does it
(https://cloud.tencent.com/document/api/213/30654): the simulator rebuilds the canonical
request from what it received (method, ``/``, the signed headers' values, the SHA-256 of the
body as sent), derives the signing key from the SecretKey it holds for the ``Credential``'s
SecretId and compares signatures. Refusals, each ``{"Response": {"Error": {"Code",
"Message"}, "RequestId"}}`` in an HTTP 200 body:

* no or malformed ``Authorization``: ``AuthFailure.InvalidAuthorization``;
* unknown SecretId: ``AuthFailure.SecretIdNotFound``;
* ``X-TC-Timestamp`` more than 300 s from now: ``AuthFailure.SignatureExpire``;
* a credential scope whose date or service does not match, or any signature mismatch:
  ``AuthFailure.SignatureFailure``;
* ``X-TC-Action`` other than ChatCompletions: ``InvalidAction``; ``X-TC-Version`` other
  than 2023-09-01: ``NoSuchVersion``.

The body is checked against the ``ChatCompletions`` reference
(https://cloud.tencent.com/document/api/1729/105701), PascalCase only: ``Model`` one of
:data:`MODELS`; ``Messages`` of ``{Role, Content}``, an optional system message first, then
user (or tool) and assistant alternating, starting with user, ending with user or tool, contents
non-empty unless an assistant carries ``ToolCalls``, a tool message with ``ToolCallId``;
``Temperature`` in [0, 2], ``TopP`` in [0, 1]; ``Tools`` of ``{Type: "function", Function:
{Name, Parameters (a JSON string), Description}}``; unknown fields are refused
(``UnknownParameter``). Violations are ``InvalidParameter`` / ``InvalidParameterValue``.

Answers (:mod:`unigate_sim.echo_reply`): ``Response.Choices[0].Message`` (``ToolCalls`` when
calling a tool, ``FinishReason`` ``tool_calls``) and ``Usage``; streamed as SSE ``data:``
objects with ``Choices[0].Delta``, the running ``Usage``, and ``FinishReason`` on the last
(no ``[DONE]``). ``app.state``: ``secrets`` (SecretId → SecretKey), ``calls`` (headers and
body of each authenticated request) and ``fail_next`` (``(Code, Message)`` pairs answered to
the next authenticated requests).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unigate_sim.echo_reply import Reply, prompt_tokens, reply
from unigate_sim.openai.tokens import count_tokens, token_pieces

MODELS: Final = frozenset(
    {"hunyuan-lite", "hunyuan-standard", "hunyuan-pro", "hunyuan-turbo", "hunyuan-functioncall"}
)
MAX_CLOCK_SKEW: Final = 300
_FIELDS: Final = frozenset(
    {
        "Model",
        "Messages",
        "Stream",
        "StreamModeration",
        "TopP",
        "Temperature",
        "EnableEnhancement",
        "Tools",
        "ToolChoice",
        "CustomTool",
        "SearchInfo",
        "Citation",
        "EnableSpeedSearch",
    }
)
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([^/]+)/tc3_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)
# Hunyuan marks every answer as AI-generated (its own wording).
NOTE: Final = "以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"  # noqa: RUF001


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def error_response(code: str, message: str) -> Response:
    body = {
        "Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
    }
    return Response(orjson.dumps(body), media_type="application/json")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def expected_signature(
    secret_key: str, date: str, service: str, timestamp: str, canonical: str
) -> str:
    """The signature Tencent computes for ``canonical`` (an independent implementation of
    the documented algorithm, so a relay's signer is checked against it, not against
    itself)."""
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            timestamp,
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify(headers: dict[str, str], body: bytes, keys: dict[str, str], now: float) -> None:
    """Check a request's TC3 signature as Tencent does; raises Refusal. ``headers`` have
    lower-case names."""
    match = _AUTH.match(headers.get("authorization", ""))
    if match is None:
        raise Refusal("AuthFailure.InvalidAuthorization", "Authorization header format error.")
    secret_id, date, service, signed, signature = match.groups()
    if secret_id not in keys:
        raise Refusal(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    raw_timestamp = headers.get("x-tc-timestamp", "")
    if not raw_timestamp.isdigit():
        raise Refusal(
            "MissingParameter", "The request is missing a required parameter `Timestamp`."
        )
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise Refusal(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp {timestamp} vs server time {int(now)}.",
        )
    names = signed.split(";")
    failure = Refusal(
        "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
    )
    if (
        service != "hunyuan"
        or date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        or names != sorted(names)
        or not {"content-type", "host"} <= set(names)
        or any(n not in headers for n in names)
    ):
        raise failure
    canonical_headers = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    canonical = "\n".join(
        ["POST", "/", "", canonical_headers, signed, hashlib.sha256(body).hexdigest()]
    )
    wanted = expected_signature(keys[secret_id], date, service, raw_timestamp, canonical)
    if not hmac.compare_digest(wanted, signature):
        raise failure


def _invalid(message: str, code: str = "InvalidParameter") -> Refusal:
    return Refusal(code, message)


def check_body(body: Any) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """The messages and offered tools of a valid ChatCompletions body."""
    if not isinstance(body, dict):
        raise _invalid("The request body is not a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise Refusal("UnknownParameter", f"The parameter `{unknown[0]}` is not recognized.")
    if body.get("Model") not in MODELS:
        raise _invalid(
            f"Model `{body.get('Model')}` is not supported.", "InvalidParameterValue.Model"
        )
    messages = body.get("Messages")
    if not isinstance(messages, list) or not messages or len(messages) > 40:
        raise _invalid("Messages must hold 1 to 40 messages.")
    turns = messages
    if isinstance(messages[0], dict) and messages[0].get("Role") == "system":
        turns = messages[1:]
    if not turns:
        raise _invalid("Messages must end with a user message.")
    for index, message in enumerate(turns):
        if not isinstance(message, dict) or set(message) - {
            "Role",
            "Content",
            "ToolCallId",
            "ToolCalls",
            "Contents",
        }:
            raise _invalid("Messages must be objects of Role and Content.")
        role, content = message.get("Role"), message.get("Content")
        wanted = ("user", "tool") if index % 2 == 0 else ("assistant",)
        if role not in wanted or (index == 0 and role != "user"):
            raise _invalid(
                "Messages.Role must be [system] user assistant user ... , user and assistant "
                "alternating."
            )
        if not isinstance(content, str):
            raise _invalid("Messages.Content must be a string.")
        if not content.strip() and not (role == "assistant" and message.get("ToolCalls")):
            raise _invalid("Messages.Content must not be empty.")
        if role == "tool" and not message.get("ToolCallId"):
            raise _invalid("A tool message needs its ToolCallId.")
    if turns[-1].get("Role") not in ("user", "tool"):
        raise _invalid("Messages must end with a user or tool message.")
    for field, high in (("Temperature", 2.0), ("TopP", 1.0)):
        value = body.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high
        ):
            raise _invalid(f"{field} must be between 0 and {high}.", "InvalidParameterValue")
    if "Stream" in body and not isinstance(body["Stream"], bool):
        raise _invalid("Stream must be a boolean.")
    tools: list[tuple[str, Any]] = []
    for tool in body.get("Tools") or []:
        function = tool.get("Function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("Type") != "function"
            or not isinstance(function.get("Name"), str)
            or not isinstance(function.get("Parameters"), str)
        ):
            raise _invalid("Tools must be {Type: function, Function: {Name, Parameters}}.")
        try:
            schema = orjson.loads(function["Parameters"])
        except orjson.JSONDecodeError:
            raise _invalid("Tools.Function.Parameters must be a JSON string.") from None
        tools.append((function["Name"], schema))
    if body.get("ToolChoice") not in (None, "none", "auto", "custom"):
        raise _invalid("ToolChoice must be none, auto or custom.", "InvalidParameterValue")
    if body.get("ToolChoice") == "none":
        tools = []
    return messages, tools


class HunyuanSimulator:
    def __init__(self, app: Starlette) -> None:
        self.state = app.state

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verify(headers, raw, self.state.secrets, time.time())
        except Refusal as exc:
            return error_response(exc.code, exc.message)
        if headers.get("x-tc-action") != "ChatCompletions":
            return error_response("InvalidAction", "The action requested does not exist.")
        if headers.get("x-tc-version") != "2023-09-01":
            return error_response("NoSuchVersion", "The requested version does not exist.")
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.state.calls.append({"headers": headers, "body": body})
        if self.state.fail_next:
            return error_response(*self.state.fail_next.pop(0))
        try:
            messages, tools = check_body(body)
        except Refusal as exc:
            return error_response(exc.code, exc.message)
        last = messages[-1]
        answer = reply(last["Role"], last["Content"], tools)
        prompt = prompt_tokens([(m["Role"], m["Content"]) for m in messages])
        if body.get("Stream"):
            return StreamingResponse(_stream(answer, prompt), media_type="text/event-stream")
        message: dict[str, Any] = {"Role": "assistant", "Content": answer.text}
        if answer.is_call:
            message["ToolCalls"] = [_tool_call(answer)]
        response = {
            "RequestId": str(uuid.uuid4()),
            "Note": NOTE,
            "Choices": [
                {"Message": message, "FinishReason": "tool_calls" if answer.is_call else "stop"}
            ],
            "Created": int(time.time()),
            "Id": str(uuid.uuid4()),
            "Usage": _usage(prompt, answer.completion_tokens()),
        }
        return Response(orjson.dumps({"Response": response}), media_type="application/json")


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "PromptTokens": prompt,
        "CompletionTokens": completion,
        "TotalTokens": prompt + completion,
    }


def _tool_call(answer: Reply) -> dict[str, Any]:
    return {
        "Id": "call_" + secrets.token_hex(10),
        "Type": "function",
        "Function": {"Name": answer.name, "Arguments": answer.arguments},
        "Index": 0,
    }


async def _stream(answer: Reply, prompt: int) -> AsyncIterator[bytes]:
    created, id = int(time.time()), str(uuid.uuid4())

    def event(delta: dict[str, Any], finish: str, completion: int) -> bytes:
        chunk = {
            "Note": NOTE,
            "Choices": [{"Delta": delta, "FinishReason": finish}],
            "Created": created,
            "Id": id,
            "Usage": _usage(prompt, completion),
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    if answer.is_call:
        delta = {"Role": "assistant", "Content": "", "ToolCalls": [_tool_call(answer)]}
        yield event(delta, "tool_calls", answer.completion_tokens())
        return
    pieces = token_pieces(answer.text) or [""]
    done = 0
    for index, piece in enumerate(pieces):
        done += count_tokens(piece)
        last = index == len(pieces) - 1
        yield event(
            {"Role": "assistant", "Content": piece},
            "stop" if last else "",
            answer.completion_tokens() if last else done,
        )


def create_hunyuan_app(keys: dict[str, str]) -> Starlette:
    """The simulator for SecretId → SecretKey pairs ``keys``."""
    app = Starlette()
    sim = HunyuanSimulator(app)
    app.router.routes.append(Route("/", sim.handle, methods=["POST"]))
    app.state.secrets = dict(keys)
    app.state.calls = []
    app.state.fail_next = []
    return app
