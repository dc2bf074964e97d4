"""The machinery every OpenAI-like provider simulator shares: a :class:`Profile` says what one
provider does differently, and :class:`CompatibleSimulator` applies it around the strict
OpenAI simulator (``unigate_sim.openai``), which still validates and answers every request.

Order of checks, as the providers answer: path (404), API key (401, or the provider's own
status), model (the provider's not-found answer), provider-specific body rules, then the
OpenAI simulator's validation; its errors are re-worded into the provider's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.applications import Starlette

from unigate_sim.asgi_io import (
    Receive,
    Scope,
    Send,
    call_whole,
    json_or_none,
    read_all,
    send_whole,
)
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import DONE_FRAME, data_frame

#: The model the wrapped OpenAI simulator serves each non-chat endpoint with; the provider's
#: own model names are swapped for it on the way in and restored on the way out.
INNER_MODELS: dict[str, str] = {
    "/embeddings": "text-embedding-3-small",
    "/rerank": "rerank-english-v3.0",
    "/completions": "gpt-3.5-turbo-instruct",
    "/images/generations": "dall-e-3",
}
_DEFAULT_STATUS = {"invalid_url": 404, "auth": 401, "model_not_found": 404}

ErrorKind = Literal[
    "invalid_url", "auth", "model_not_found", "invalid_request", "image_unsupported"
]

#: Where a provider's stream reports usage:
#: ``asked`` — a final ``choices: []`` chunk, only when ``stream_options.include_usage``;
#: ``always`` — that final chunk whether asked or not;
#: ``last_chunk`` — top-level ``usage`` on the chunk carrying ``finish_reason``, always;
#: ``choice`` — ``choices[0].usage`` of the chunk carrying ``finish_reason``, always;
#: ``x_groq`` — ``x_groq.usage`` of the chunk carrying ``finish_reason``, always;
#: ``never`` — nowhere (FastGPT).
StreamUsage = Literal["asked", "always", "last_chunk", "choice", "x_groq", "never"]


@dataclass(frozen=True, slots=True)
class ProviderError:
    """A refusal, before the provider words it: its status, kind, message and parameter."""

    status: int
    kind: ErrorKind
    message: str
    param: str | None = None


#: Renders a refusal as the provider does: the HTTP status and the body bytes.
ErrorRenderer = Callable[[ProviderError], tuple[int, bytes]]
#: Provider-specific body rules for an endpoint ("/chat/completions", ...): None when fine.
BodyCheck = Callable[[str, JSONObject], ProviderError | None]
#: Changes a parsed answer (non-stream) or list of stream chunks after the OpenAI simulator.
AnswerHook = Callable[["CompatibleSimulator", JSONObject, JSONObject], JSONObject]
StreamHook = Callable[["CompatibleSimulator", JSONObject, list[JSONObject]], list[JSONObject]]
#: Answers a GET account route (a balance query) with its JSON body, after the key check.
AccountHook = Callable[["CompatibleSimulator"], JSONObject]


@dataclass(frozen=True)
class Profile:
    """What one provider does differently from OpenAI."""

    name: str
    #: Path prefixes its API is served under (each replaces OpenAI's ``/v1``).
    prefixes: tuple[str, ...]
    #: Endpoints it serves below a prefix; anything else is the provider's 404.
    endpoints: frozenset[str]
    #: The models served, per endpoint (``"/chat/completions"``, ``"/embeddings"``, ...).
    models: dict[str, tuple[str, ...]]
    render_error: ErrorRenderer
    #: Messages of the provider's refusals, by kind; ``{model}``/``{path}`` are filled in.
    messages: dict[ErrorKind, str]
    #: Chat models that take ``image_url`` parts; None when every chat model does.
    vision_models: frozenset[str] | None = None
    #: False for servers that ignore the Authorization header (Ollama).
    checks_key: bool = True
    #: Statuses differing from 404 (path, model) / 401 (key) / 400 (anything else).
    statuses: dict[ErrorKind, int] = field(default_factory=dict)
    stream_usage: StreamUsage = "asked"
    check_body: BodyCheck | None = None
    answer_hook: AnswerHook | None = None
    stream_hook: StreamHook | None = None
    #: Changes the usage object, streamed or not (DeepSeek's cache-hit fields).
    usage_hook: AnswerHook | None = None
    #: Request fields only this provider knows: accepted, and hidden from the OpenAI checks.
    own_fields: frozenset[str] = frozenset()
    #: The only request fields it reads, the rest ignored (FastGPT: the app decides the
    #: model and its settings); None when it reads them all. Without ``model`` among them any
    #: model is accepted and the first of ``models`` answers.
    reads_only: frozenset[str] | None = None
    #: SSE comment lines sent before the first chunk (OpenRouter's keep-alive).
    stream_preamble: bytes = b""
    #: GET routes about the account, by full path (DeepSeek's ``/user/balance``, ...).
    account: dict[str, AccountHook] = field(default_factory=dict)

    def error(
        self, kind: ErrorKind, status: int | None = None, param: str | None = None, **names: str
    ) -> ProviderError:
        """The provider's refusal of ``kind``, its message filled in with ``names``."""
        default = self.statuses.get(kind, _DEFAULT_STATUS.get(kind, 400))
        code = status if status is not None else default
        return ProviderError(code, kind, self.messages[kind].format(**names), param)

    def rendered(
        self, kind: ErrorKind, status: int | None = None, param: str | None = None, **names: str
    ) -> tuple[int, Any]:
        """The status and body a client receives for that refusal (for tests): parsed JSON,
        or the text of a plain-text answer."""
        status_code, body = self.render_error(self.error(kind, status, param, **names))
        parsed = json_or_none(body)
        return status_code, parsed if parsed is not None else body.decode()

    @property
    def chat_models(self) -> tuple[str, ...]:
        return self.models.get("/chat/completions", ())


def has_image_parts(messages: Any) -> bool:
    """Whether any message carries an ``image_url`` content part."""
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            return True
    return False


def _asked_usage(request: JSONObject) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _finish_index(chunks: list[JSONObject]) -> int | None:
    found = None
    for i, chunk in enumerate(chunks):
        if any(c.get("finish_reason") for c in chunk.get("choices") or []):
            found = i
    return found


def place_stream_usage(
    mode: StreamUsage, chunks: list[JSONObject], usage: Any, asked: bool
) -> list[JSONObject]:
    """Put ``usage`` where the provider's stream carries it (``chunks`` carry none)."""
    if mode == "never":
        return chunks
    if (mode == "asked" and asked) or mode == "always":
        last = {**chunks[-1], "choices": [], "usage": usage} if chunks else {"choices": []}
        return [*chunks, last]
    finish = _finish_index(chunks)
    if finish is None or mode == "asked":
        return chunks
    chunk = chunks[finish]
    if mode == "last_chunk":
        chunk["usage"] = usage
    elif mode == "choice":
        chunk["choices"][0]["usage"] = usage
    else:
        chunk["x_groq"] = {"id": "req_sim", "usage": usage}
    return chunks


class CompatibleSimulator:
    """ASGI app: one provider's paths, key check, models, refusals and stream framing around
    an OpenAI simulator. ``state`` is the wrapped simulator's (``calls``, ``fail_next``,
    ``faults``, ``api_keys``); ``calls`` record the provider's own paths."""

    def __init__(self, profile: Profile, inner: Starlette) -> None:
        self.profile = profile
        self.provider = profile.name
        self.inner = inner
        self.state = inner.state
        self.state.seen_prefixes = set()

    def _endpoint(self, path: str) -> str | None:
        for prefix in self.profile.prefixes:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if rest in self.profile.endpoints or (
                "/models" in self.profile.endpoints and rest.startswith("/models/")
            ):
                return rest
        return None

    def _key_error(self, scope: Scope) -> ProviderError | None:
        if not self.profile.checks_key:
            return None
        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode().partition(" ")
        key = key.strip()
        if scheme.lower() == "bearer" and key in self.state.api_keys:
            return None
        masked = key[:2] + "***" + key[-2:] if len(key) > 4 else key
        return self.profile.error("auth", key=masked)

    def _request_error(self, endpoint: str, request: Any) -> ProviderError | None:
        if not isinstance(request, dict) or endpoint not in self.profile.models:
            return None
        model = request.get("model")
        reads = self.profile.reads_only
        checks_model = reads is None or "model" in reads
        if checks_model and isinstance(model, str) and model not in self.profile.models[endpoint]:
            return self.profile.error("model_not_found", model=model)
        if self.profile.check_body is not None:
            refused = self.profile.check_body(endpoint, request)
            if refused is not None:
                return refused
        vision = self.profile.vision_models
        if (
            endpoint == "/chat/completions"
            and vision is not None
            and model not in vision
            and has_image_parts(request.get("messages"))
        ):
            return self.profile.error("image_unsupported", model=str(model))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        account = self.profile.account.get(scope["path"])
        if account is not None and scope["method"] == "GET":
            if (key_error := self._key_error(scope)) is not None:
                await self._refuse(send, key_error)
                return
            await send_whole(send, 200, [], orjson.dumps(account(self)))
            return
        endpoint = self._endpoint(scope["path"])
        if endpoint is None:
            path = scope["path"]
            await self._refuse(
                send, self.profile.error("invalid_url", method=scope["method"], path=path)
            )
            return
        if (key_error := self._key_error(scope)) is not None:
            await self._refuse(send, key_error)
            return
        body = await read_all(receive)
        request = json_or_none(body)
        if (refused := self._request_error(endpoint, request)) is not None:
            await self._refuse(send, refused)
            return
        inner_request = self._inner_request(endpoint, request)
        if inner_request is not None:
            body = orjson.dumps(inner_request)
        injected_before = len(self.state.fail_next) + len(self.state.faults)
        calls_before = len(self.state.calls)
        status, headers, answer = await self._call_inner(scope, endpoint, body)
        if len(self.state.calls) > calls_before:
            self.state.calls[-1]["path"] = scope["path"]
            self.state.calls[-1]["body"] = request
        injected = len(self.state.fail_next) + len(self.state.faults) < injected_before
        if status >= 400 and not injected:
            await self._refuse(send, self._reworded(status, answer))
            return
        if status == 200 and isinstance(request, dict):
            answer = self._rewrite(endpoint, request, answer)
        await send_whole(send, status, headers, answer)

    def _inner_request(self, endpoint: str, request: Any) -> JSONObject | None:
        """What the OpenAI simulator is asked: provider-only fields removed, usage always
        asked for on streams (re-placed afterwards), provider embedding models swapped."""
        if not isinstance(request, dict):
            return None
        inner = {k: v for k, v in request.items() if k not in self.profile.own_fields}
        if (reads := self.profile.reads_only) is not None:
            inner = {k: v for k, v in inner.items() if k in reads}
            if "model" not in reads and endpoint in self.profile.models:
                inner["model"] = self.profile.models[endpoint][0]
        if endpoint == "/chat/completions" and request.get("stream") is True:
            inner["stream_options"] = {"include_usage": True}
        elif endpoint == "/chat/completions":
            inner.pop("stream_options", None)
        if endpoint in INNER_MODELS:
            inner["model"] = INNER_MODELS[endpoint]
        return inner

    async def _call_inner(
        self, scope: Scope, endpoint: str, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"authorization"]
        # The key was checked here already (or is ignored, as by Ollama).
        inner_key = next(iter(self.state.api_keys), "")
        headers.append((b"authorization", f"Bearer {inner_key}".encode()))
        inner_path = "/v1" + endpoint
        inner_scope = {
            **scope,
            "path": inner_path,
            "raw_path": inner_path.encode(),
            "headers": headers,
        }
        status, answered, answer = await call_whole(self.inner, inner_scope, body)
        dropped = (b"x-request-id", b"openai-version")
        kept = [(k, v) for k, v in answered if k.lower() not in dropped]
        return status, kept, answer

    def _reworded(self, status: int, answer: bytes) -> ProviderError:
        """An OpenAI simulator refusal in the provider's words (kind and status kept)."""
        error = (json_or_none(answer) or {}).get("error") or {}
        message = str(error.get("message") or f"HTTP {status}")
        kind: ErrorKind = (
            "model_not_found"
            if error.get("code") == "model_not_found"
            else ("auth" if status == 401 else "invalid_request")
        )
        return ProviderError(status, kind, message, error.get("param"))

    def _rewrite(self, endpoint: str, request: JSONObject, answer: bytes) -> bytes:
        if endpoint in INNER_MODELS:
            data = orjson.loads(answer)
            if isinstance(data, dict) and "model" in data:
                data["model"] = request.get("model")
            return orjson.dumps(data)
        if endpoint != "/chat/completions":
            return answer
        if request.get("stream") is True:
            frames = [f for f in answer.split(b"\n\n") if f.startswith(b"data: {")]
            chunks: list[JSONObject] = [orjson.loads(f[len(b"data: ") :]) for f in frames]
            usage = next((c["usage"] for c in chunks if c.get("usage")), None)
            if usage is not None and self.profile.usage_hook is not None:
                usage = self.profile.usage_hook(self, request, usage)
            content = [c for c in chunks if c.get("choices")]
            for chunk in content:
                chunk.pop("usage", None)
            if self.profile.stream_hook is not None:
                content = self.profile.stream_hook(self, request, content)
            content = place_stream_usage(
                self.profile.stream_usage, content, usage, _asked_usage(request)
            )
            framed = b"".join(data_frame(c) for c in content)
            return self.profile.stream_preamble + framed + DONE_FRAME
        data = orjson.loads(answer)
        if not isinstance(data, dict):
            return answer  # an injected answer that is not a completion, sent as it is
        if self.profile.usage_hook is not None and isinstance(data.get("usage"), dict):
            data["usage"] = self.profile.usage_hook(self, request, data["usage"])
        if self.profile.answer_hook is not None:
            data = self.profile.answer_hook(self, request, data)
        return orjson.dumps(data)

    async def _refuse(self, send: Send, error: ProviderError) -> None:
        status, body = self.profile.render_error(error)
        # Some servers answer a wrong path in plain text (Go's "404 page not found").
        text = not body.startswith((b"{", b"["))
        headers = [(b"content-type", b"text/plain; charset=utf-8")] if text else []
        await send_whole(send, status, headers, body)
