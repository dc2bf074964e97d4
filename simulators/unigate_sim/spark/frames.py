"""Spark request frames checked as iFlytek checks them, and the answer frames.

Shapes and limits from https://www.xfyun.cn/doc/spark/Web.html §3 to §5: ``header.app_id``
(the key's app, else 11200) and ``uid`` (at most 32 characters), ``parameter.chat`` with the
path's ``domain``, ``temperature`` in [0, 2], ``top_k`` in [1, 6], ``max_tokens`` up to 4096
(Lite) or 8192, ``payload.message.text`` of ``{role, content}`` with roles
system/user/assistant (system first, and only where the domain takes one), ending with a user
message, within the domain's token limit (10907); ``payload.functions.text``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from unigate_sim.openai.tokens import count_tokens, truncate_tokens

PARAMETER_ERROR: Final = 10163
TOKEN_LIMIT: Final = 10907
APP_NOT_AUTHORIZED: Final = 11200
MESSAGE_FORMAT: Final = 10003

SYSTEM_DOMAINS: Final = frozenset({"generalv3.5", "max-32k", "4.0Ultra"})
FUNCTION_DOMAINS: Final = frozenset({"generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"})
#: Input tokens each domain takes (history plus question).
INPUT_LIMITS: Final = {"pro-128k": 131072, "max-32k": 32768}
DEFAULT_INPUT_LIMIT: Final = 8192
MAX_TOKENS_LIMITS: Final = {"lite": 4096, "general": 4096}
DEFAULT_MAX_TOKENS_LIMIT: Final = 8192
_CHAT_KEYS: Final = frozenset(
    {"domain", "temperature", "max_tokens", "top_k", "auditing", "chat_id", "show_ref_label"}
)
_WEATHER_RE: Final = re.compile(r"\bweather\b", re.IGNORECASE)
#: How many content frames an answer is spread over (the last one also ends it).
ANSWER_FRAMES: Final = 3


class FrameError(Exception):
    """A request refused with ``header.code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _param(message: str) -> FrameError:
    return FrameError(PARAMETER_ERROR, f"InvalidParamError:({PARAMETER_ERROR}){message}")


@dataclass(frozen=True, slots=True)
class SparkRequest:
    domain: str
    messages: list[dict[str, str]]
    functions: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int | None = None


def _object(value: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _param(f"{path} must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _param(f"{path} has unknown field {unknown[0]}")
    return value


def _number(value: Any, path: str, low: float, high: float, *, integer: bool) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise _param(f"{path} must be {'an integer' if integer else 'a number'} in [{low}, {high}]")
    return float(value)


def _messages(value: Any, domain: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _param("payload.message.text must be a non-empty array")
    out: list[dict[str, str]] = []
    for index, item in enumerate(value):
        path = f"payload.message.text[{index}]"
        item = _object(item, path, frozenset({"role", "content"}))
        role, content = item.get("role"), item.get("content")
        if role not in ("system", "user", "assistant"):
            raise _param(f"{path}.role must be system, user or assistant")
        if not isinstance(content, str) or not content:
            raise _param(f"{path}.content must be a non-empty string")
        if role == "system" and (index != 0 or domain not in SYSTEM_DOMAINS):
            raise _param(f"{path}: a system message must come first, on a domain that takes one")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise _param("the last message must be the user's")
    total = sum(count_tokens(m["content"]) for m in out)
    if total > INPUT_LIMITS.get(domain, DEFAULT_INPUT_LIMIT):
        raise FrameError(TOKEN_LIMIT, f"TokenLimitExceeded:({TOKEN_LIMIT})token limit exceeded")
    return out


def _functions(value: Any, domain: str) -> list[dict[str, Any]]:
    wrapper = _object(value, "payload.functions", frozenset({"text"}))
    functions = wrapper.get("text")
    if not isinstance(functions, list) or not functions:
        raise _param("payload.functions.text must be a non-empty array")
    if domain not in FUNCTION_DOMAINS:
        raise _param(f"domain {domain} does not support functions")
    for index, function in enumerate(functions):
        path = f"payload.functions.text[{index}]"
        function = _object(function, path, frozenset({"name", "description", "parameters"}))
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise _param(f"{path}.name must be a non-empty string")
        parameters = function.get("parameters")
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            raise _param(f"{path}.parameters must be a JSON schema of type object")
    return functions


def parse_request(raw: str | bytes, app_id: str, domains: frozenset[str]) -> SparkRequest:
    """The request frame of a connection to a path serving ``domains``, for app ``app_id``."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError(MESSAGE_FORMAT, "the request frame is not JSON") from None
    frame = _object(frame, "$", frozenset({"header", "parameter", "payload"}))
    header = _object(frame.get("header"), "header", frozenset({"app_id", "uid", "patch_id"}))
    if not isinstance(header.get("app_id"), str) or not header["app_id"]:
        raise _param("header.app_id is required")
    uid = header.get("uid")
    if uid is not None and (not isinstance(uid, str) or len(uid) > 32):
        raise _param("header.uid must be a string of at most 32 characters")
    if header["app_id"] != app_id:
        raise FrameError(APP_NOT_AUTHORIZED, "AppIdNoAuthError:(11200)auth no license")
    parameter = _object(frame.get("parameter"), "parameter", frozenset({"chat"}))
    chat = _object(parameter.get("chat"), "parameter.chat", _CHAT_KEYS)
    domain = chat.get("domain")
    if not isinstance(domain, str) or domain not in domains:
        raise _param(f"parameter.chat.domain {domain!r} is not served at this URL")
    if "temperature" in chat:
        _number(chat["temperature"], "parameter.chat.temperature", 0, 2, integer=False)
    if "top_k" in chat:
        _number(chat["top_k"], "parameter.chat.top_k", 1, 6, integer=True)
    max_tokens = None
    if "max_tokens" in chat:
        limit = MAX_TOKENS_LIMITS.get(domain, DEFAULT_MAX_TOKENS_LIMIT)
        max_tokens = int(
            _number(chat["max_tokens"], "parameter.chat.max_tokens", 1, limit, integer=True)
        )
    payload = _object(frame.get("payload"), "payload", frozenset({"message", "functions"}))
    message = _object(payload.get("message"), "payload.message", frozenset({"text"}))
    messages = _messages(message.get("text"), domain)
    functions = _functions(payload["functions"], domain) if "functions" in payload else []
    return SparkRequest(domain, messages, functions, max_tokens)


def _example(schema: Any, text: str) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required")
        return {
            name: _example(sub, text)
            for name, sub in properties.items()
            if not isinstance(required, list) or name in required
        }
    if kind == "string":
        enum = schema.get("enum")
        return enum[0] if isinstance(enum, list) and enum else text
    return {"integer": 1, "number": 1, "boolean": True, "array": []}.get(str(kind))


def _frame(sid: str, status: int, seq: int, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "header": {"code": 0, "message": "Success", "sid": sid, "status": status},
        "payload": {
            "choices": {
                "status": status,
                "seq": seq,
                "text": [{"content": "", "role": "assistant", "index": 0, **item}],
            }
        },
    }


def answer_frames(request: SparkRequest) -> list[dict[str, Any]]:
    """The answer: frames with status 0, 1…, 2, and usage in the last."""
    sid = "cht000" + secrets.token_hex(8)
    question = request.messages[-1]["content"]
    prompt = sum(count_tokens(m["content"]) for m in request.messages)
    if request.functions:
        prompt += count_tokens(orjson.dumps(request.functions).decode())
    frames: list[dict[str, Any]]
    if request.functions and _WEATHER_RE.search(question):
        function = request.functions[0]
        arguments = orjson.dumps(_example(function["parameters"], question)).decode()
        call = {"name": function["name"], "arguments": arguments}
        completion = count_tokens(call["name"]) + count_tokens(arguments)
        frames = [
            _frame(sid, 0, 0, {}),
            _frame(sid, 2, 1, {"content_type": "text", "function_call": call}),
        ]
    else:
        text = "Echo: " + question
        if request.max_tokens is not None:
            text, _ = truncate_tokens(text, request.max_tokens)
        completion = count_tokens(text)
        size = max(1, -(-len(text) // ANSWER_FRAMES))
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        if len(pieces) < 2:
            pieces.append("")
        last = len(pieces) - 1
        frames = [
            _frame(sid, 0 if i == 0 else 2 if i == last else 1, i, {"content": piece})
            for i, piece in enumerate(pieces)
        ]
    frames[-1]["payload"]["usage"] = {
        "text": {
            "question_tokens": count_tokens(question),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    }
    return frames


def error_frame(code: int, message: str) -> dict[str, Any]:
    """A refusal: only a header, then the server closes the connection."""
    sid = "cht000" + secrets.token_hex(8)
    return {"header": {"code": code, "message": message, "sid": sid, "status": 2}}
