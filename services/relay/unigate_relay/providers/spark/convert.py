"""OpenAI chat requests as Spark request frames, and Spark answer frames as OpenAI answers.

Request frame (https://www.xfyun.cn/doc/spark/Web.html §3): ``header.app_id``/``uid``,
``parameter.chat`` (``domain``, ``temperature``, ``max_tokens``, ``top_k``),
``payload.message.text`` (``{role, content}`` with roles system/user/assistant only) and
``payload.functions.text`` (function definitions). Answer frames carry
``payload.choices.text[0].content`` pieces, one ``function_call`` ``{name, arguments}`` when
the model calls a function, ``payload.choices.status`` (0 first, 1 middle, 2 last) and, in the
last frame, ``payload.usage.text`` (``question_tokens``, ``prompt_tokens``,
``completion_tokens``, ``total_tokens``).

The WebSocket protocol has no role for function results, so a conversation's tool turns are
written as text: an assistant's calls as Spark's own ``{"function_call": {...}}`` JSON, and the
results as a user turn ``Result of function <name>: <content>``.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.json_values import count, obj
from unigate_relay.providers.openai_shapes import chunk_frame
from unigate_relay.providers.spark.models import FUNCTION_DOMAINS, SYSTEM_DOMAINS
from unigate_relay.providers.text_content import NonTextPart, NotContent, text_only

# iFlytek limits ``header.uid`` to 32 characters.
_UID_MAX = 32
DEFAULT_UID = "unigate"
# What the assistant "answers" to a system prompt given as a user turn (New API's wording).
SYSTEM_ACK = "Okay"


class Unsupported(ValueError):
    """The request asks for something Spark's WebSocket API cannot do."""


def _text(content: Any, role: str) -> str:
    try:
        return text_only(content, none_is_empty=True)
    except NonTextPart:
        raise Unsupported(f"Spark's chat API takes text only ({role} message).") from None
    except NotContent:
        raise Unsupported(f"Invalid content in a {role} message.") from None


def _call_text(call: dict[str, Any]) -> str:
    function = obj(call.get("function")) or call
    return orjson.dumps(
        {
            "function_call": {
                "name": str(function.get("name") or ""),
                "arguments": str(function.get("arguments") or ""),
            }
        }
    ).decode()


def _turns(messages: list[Any], domain: str) -> list[dict[str, str]]:
    system: list[str] = []
    turns: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, dict):
            raise Unsupported("Each message must be an object.")
        role = str(message.get("role") or "")
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), role))
            continue
        if role == "user":
            turns.append({"role": "user", "content": _text(message.get("content"), role)})
        elif role == "assistant":
            text = _text(message.get("content"), role)
            calls = message.get("tool_calls") or []
            if isinstance(message.get("function_call"), dict):
                calls = [{"function": message["function_call"]}]
            for call in calls if isinstance(calls, list) else []:
                if isinstance(call, dict):
                    names[str(call.get("id") or "")] = str(
                        (call.get("function") or {}).get("name") or ""
                    )
                    text = (text + "\n" if text else "") + _call_text(call)
            turns.append({"role": "assistant", "content": text})
        elif role in ("tool", "function"):
            name = str(message.get("name") or names.get(str(message.get("tool_call_id")), ""))
            result = _text(message.get("content"), role)
            turns.append({"role": "user", "content": f"Result of function {name}: {result}"})
        else:
            raise Unsupported(f"Spark has no `{role}` role.")
    merged: list[dict[str, str]] = []
    for turn in turns:
        # Parallel tool results (or split user turns) become one turn: Spark alternates roles.
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"] += "\n\n" + turn["content"]
        else:
            merged.append(turn)
    if system:
        prompt = "\n\n".join(system)
        if domain in SYSTEM_DOMAINS:
            merged.insert(0, {"role": "system", "content": prompt})
        else:
            merged[0:0] = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": SYSTEM_ACK},
            ]
    if not merged or merged[-1]["role"] != "user":
        raise Unsupported("Spark answers a conversation that ends with a user message.")
    return merged


def _functions(request: dict[str, Any], domain: str) -> list[dict[str, Any]]:
    choice = request.get("tool_choice", request.get("function_call"))
    if choice == "none":
        return []
    found: list[dict[str, Any]] = []
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            found.append(tool.get("function") or {})
    for function in request.get("functions") or []:
        if isinstance(function, dict):
            found.append(function)
    if found and domain not in FUNCTION_DOMAINS:
        raise Unsupported(f"Spark `{domain}` does not support function calling.")
    out = []
    for function in found:
        entry: dict[str, Any] = {"name": str(function.get("name") or "")}
        if function.get("description"):
            entry["description"] = str(function["description"])
        entry["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
        out.append(entry)
    return out


def request_frame(request: dict[str, Any], *, app_id: str, domain: str) -> dict[str, Any]:
    """The request frame for an OpenAI chat request."""
    if request.get("n") not in (None, 1):
        raise Unsupported("Spark returns one choice; `n` must be 1.")
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise Unsupported("`messages` must be an array.")
    chat: dict[str, Any] = {"domain": domain}
    if isinstance(request.get("temperature"), int | float):
        chat["temperature"] = request["temperature"]
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(max_tokens, int):
        chat["max_tokens"] = max_tokens
    # Not an OpenAI parameter, but Spark's own sampling knob; passed when a client sends it.
    if isinstance(request.get("top_k"), int):
        chat["top_k"] = request["top_k"]
    uid = request.get("user") if isinstance(request.get("user"), str) else ""
    payload: dict[str, Any] = {"message": {"text": _turns(messages, domain)}}
    functions = _functions(request, domain)
    if functions:
        payload["functions"] = {"text": functions}
    return {
        "header": {"app_id": app_id, "uid": (uid or DEFAULT_UID)[:_UID_MAX]},
        "parameter": {"chat": chat},
        "payload": payload,
    }


def spark_error(frame: dict[str, Any]) -> tuple[int, str] | None:
    """``(header.code, header.message)`` when the frame reports an error."""
    header = frame.get("header")
    if not isinstance(header, dict):
        return 0, "an answer frame without a header"
    code = header.get("code")
    if code in (0, None):
        return None
    try:
        return int(code), str(header.get("message") or "")
    except (TypeError, ValueError):
        return 0, str(header.get("message") or code)


class Answer:
    """Spark's answer frames as they arrive: the OpenAI stream frames for each, and the whole
    answer (text, function call, usage) for a non-streamed call."""

    def __init__(self, *, id: str, model: str, created: int) -> None:
        self.id, self.model, self.created = id, model, created
        self.text: list[str] = []
        self.call: dict[str, Any] | None = None
        self.usage: common_pb2.Usage | None = None
        self.finished = False
        self.started = False

    def _frame(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return chunk_frame(
            id=self.id, model=self.model, created=self.created, delta=delta, finish_reason=finish
        )

    def feed(self, frame: dict[str, Any]) -> bytes:
        """The OpenAI frames for one (non-error) Spark answer frame."""
        payload = obj(frame.get("payload"))
        choices = obj(payload.get("choices"))
        out = bytearray()
        for item in choices.get("text") or []:
            if not isinstance(item, dict):
                continue
            delta: dict[str, Any] = {} if self.started else {"role": "assistant"}
            content = str(item.get("content") or "")
            if content:
                self.text.append(content)
                delta["content"] = content
            call = item.get("function_call")
            if isinstance(call, dict) and self.call is None:
                self.call = {
                    "id": "call_" + secrets.token_hex(12),
                    "type": "function",
                    "function": {
                        "name": str(call.get("name") or ""),
                        "arguments": str(call.get("arguments") or ""),
                    },
                }
                delta["tool_calls"] = [{"index": 0, **self.call}]
            if "content" in delta or "tool_calls" in delta or not self.started:
                out += self._frame(delta)
                self.started = True
        usage = obj(payload.get("usage")).get("text")
        if isinstance(usage, dict):
            prompt = count(usage.get("prompt_tokens"))
            completion = count(usage.get("completion_tokens"))
            self.usage = common_pb2.Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=count(usage.get("total_tokens")) or prompt + completion,
            )
        header = obj(frame.get("header"))
        if choices.get("status") == 2 or header.get("status") == 2:
            self.finished = True
            out += self._frame({}, self.finish_reason)
        return bytes(out)

    @property
    def finish_reason(self) -> str:
        # Spark reports no reason; a called function is the only end other than a full stop.
        return "tool_calls" if self.call is not None else "stop"

    def message(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.call is not None:
            return {"content": text or None, "tool_calls": [self.call]}
        return {"content": text}

    def usage_frame(self, usage: common_pb2.Usage) -> bytes:
        return chunk_frame(id=self.id, model=self.model, created=self.created, usage=usage)

    def counted_text(self) -> str:
        """The generated text, for counting when Spark reported no usage."""
        call = self.call["function"] if self.call else {}
        return "".join(self.text) + str(call.get("name") or "") + str(call.get("arguments") or "")
