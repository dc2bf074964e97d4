"""Simulators of providers that speak an OpenAI-like protocol, built on the OpenAI simulator.

:func:`create_compatible_app` wraps :func:`unigate_sim.openai.create_app`: the provider's own
path layout is mapped onto the OpenAI simulator's ``/v1`` routes (any other path is a 404),
the same bearer-key check applies, and the provider's documented differences are applied to
the answers:

* ``deepseek`` — paths ``/chat/completions`` and ``/v1/chat/completions``; usage carries
  ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` (no ``prompt_tokens_details``).
  A request whose messages before the last were sent before is a cache hit for those
  messages' tokens (``count_prompt_tokens(prefix) - REPLY_PRIMING_TOKENS``).
  ``deepseek-reasoner`` answers with ``reasoning_content`` (``"Reasoning about: <text of the
  last user message>"``) before the content, streamed as its own deltas, and counts its
  tokens in ``completion_tokens`` and ``completion_tokens_details.reasoning_tokens``.
* ``groq`` — paths under ``/openai/v1``; a stream reports its usage only in ``x_groq.usage``
  of the last chunk (the one with ``finish_reason``), whether or not ``stream_options``
  asked for it.
* ``zhipu`` — paths under ``/api/paas/v4``.

``app.state`` is the wrapped OpenAI simulator's (``calls``, ``fail_next``, ``faults``,
``api_keys``). Streams are rendered whole and then sent, so faults that pace or cut a stream
are not supported here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette

from unigate_sim.openai.app import create_app
from unigate_sim.openai.errors import OpenAIError
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import DONE_FRAME, data_frame
from unigate_sim.openai.tokens import (
    REPLY_PRIMING_TOKENS,
    count_prompt_tokens,
    count_tokens,
    message_text,
    token_pieces,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProviderLayout:
    """Path prefixes the provider serves (each replaces the OpenAI simulator's ``/v1``) and
    the models it serves by default."""

    prefixes: tuple[str, ...]
    models: tuple[str, ...]


LAYOUTS: dict[str, ProviderLayout] = {
    "deepseek": ProviderLayout(("", "/v1"), ("deepseek-chat", "deepseek-reasoner")),
    "groq": ProviderLayout(("/openai/v1",), ("llama-3.3-70b-versatile", "llama-3.1-8b-instant")),
    "zhipu": ProviderLayout(("/api/paas/v4",), ("glm-4-plus", "glm-4-flash", "glm-4-air")),
}

_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/models")
REASONER = "deepseek-reasoner"


def reasoning_text(messages: list[JSONObject]) -> str:
    """What the simulated deepseek-reasoner "thinks" before answering."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return "Reasoning about: " + (message_text(last) if last is not None else "")


class CompatibleSimulator:
    """ASGI app: the provider's paths and quirks around an OpenAI simulator."""

    def __init__(self, provider: str, inner: Starlette) -> None:
        self.provider = provider
        self.layout = LAYOUTS[provider]
        self.inner = inner
        self.state = inner.state
        self.state.seen_prefixes = set()

    def _inner_path(self, path: str) -> str | None:
        for prefix in self.layout.prefixes:
            rest = path[len(prefix) :] if path.startswith(prefix) else None
            if rest is not None and (rest in _ENDPOINTS or rest.startswith("/models/")):
                return "/v1" + rest
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        inner_path = self._inner_path(scope["path"])
        if inner_path is None:
            error = OpenAIError(404, f"Invalid URL ({scope['method']} {scope['path']})")
            await _send_whole(send, error.status, [], orjson.dumps(error.body()))
            return
        body = await _read_all(receive)
        request = _json(body)
        chat = inner_path == "/v1/chat/completions" and isinstance(request, dict)
        if chat and self.provider == "groq" and request.get("stream") is True:
            # Groq reports stream usage on its own; render it from the OpenAI usage chunk.
            request = {**request, "stream_options": {"include_usage": True}}
            body = orjson.dumps(request)
        sent: list[Message] = []

        replayed = False

        async def replay() -> Message:
            # The body once, then the real channel (which only ever says "disconnect").
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def collect(message: Message) -> None:
            sent.append(message)

        inner_scope = {**scope, "path": inner_path, "raw_path": inner_path.encode()}
        await self.inner(inner_scope, replay, collect)
        start = next(m for m in sent if m["type"] == "http.response.start")
        answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        status: int = start["status"]
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        if chat and status == 200 and isinstance(request, dict):
            answer = self._rewrite_chat(request, answer)
        await _send_whole(send, status, headers, answer)

    def _rewrite_chat(self, request: JSONObject, answer: bytes) -> bytes:
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        if request.get("stream") is True:
            frames = [f for f in answer.split(b"\n\n") if f.startswith(b"data: {")]
            chunks = [orjson.loads(f[len(b"data: ") :]) for f in frames]
            if self.provider == "deepseek":
                chunks = self._deepseek_stream(request, messages, chunks)
            elif self.provider == "groq":
                chunks = _groq_stream(chunks)
            return b"".join(data_frame(c) for c in chunks) + DONE_FRAME
        data = orjson.loads(answer)
        if self.provider == "deepseek":
            reasoning = self._deepseek_reasoning(request, messages)
            if reasoning:
                for choice in data.get("choices") or []:
                    choice["message"]["reasoning_content"] = reasoning
            data["usage"] = self._deepseek_usage(messages, data["usage"], reasoning, request)
        return orjson.dumps(data)

    # DeepSeek

    def _deepseek_reasoning(self, request: JSONObject, messages: list[JSONObject]) -> str:
        return reasoning_text(messages) if request.get("model") == REASONER else ""

    def _deepseek_usage(
        self, messages: list[JSONObject], usage: JSONObject, reasoning: str, request: JSONObject
    ) -> JSONObject:
        prefix = messages[:-1]
        key = orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS)
        seen: set[bytes] = self.state.seen_prefixes
        hit = count_prompt_tokens(prefix) - REPLY_PRIMING_TOKENS if prefix and key in seen else 0
        if prefix:
            seen.add(key)
        n_value = request.get("n")
        n = n_value if isinstance(n_value, int) else 1
        reasoning_tokens = count_tokens(reasoning) * n if reasoning else 0
        prompt = int(usage["prompt_tokens"])
        completion = int(usage["completion_tokens"]) + reasoning_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": prompt - hit,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }

    def _deepseek_stream(
        self, request: JSONObject, messages: list[JSONObject], chunks: list[JSONObject]
    ) -> list[JSONObject]:
        reasoning = self._deepseek_reasoning(request, messages)
        out: list[JSONObject] = []
        for chunk in chunks:
            if isinstance(chunk.get("usage"), dict):
                chunk["usage"] = self._deepseek_usage(messages, chunk["usage"], reasoning, request)
            out.append(chunk)
            choices = chunk.get("choices") or []
            if reasoning and choices and choices[0].get("delta", {}).get("role") == "assistant":
                # The thinking streams right after the role delta, before any content.
                choices[0]["delta"]["reasoning_content"] = ""
                for piece in token_pieces(reasoning):
                    choice = {**choices[0], "delta": {"content": None, "reasoning_content": piece}}
                    out.append({**chunk, "choices": [choice]})
        return out


def _groq_stream(chunks: list[JSONObject]) -> list[JSONObject]:
    """Groq's framing: usage only in ``x_groq.usage`` of the chunk with ``finish_reason``."""
    usage: Any = None
    content: list[JSONObject] = []
    for chunk in chunks:
        if chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
            continue
        chunk.pop("usage", None)
        content.append(chunk)
    for chunk in content:
        if any(c.get("finish_reason") for c in chunk.get("choices") or []):
            chunk["x_groq"] = {"id": "req_sim", "usage": usage}
    return content


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


async def _read_all(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    if not any(k.lower() == b"content-type" for k, _ in headers):
        headers = [*headers, (b"content-type", b"application/json")]
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def create_compatible_app(
    provider: str, api_keys: set[str], models: list[str] | None = None
) -> CompatibleSimulator:
    """A simulator of ``provider`` (a key of :data:`LAYOUTS`) accepting ``api_keys``."""
    layout = LAYOUTS[provider]
    inner = create_app(api_keys, list(models) if models is not None else list(layout.models))
    return CompatibleSimulator(provider, inner)
