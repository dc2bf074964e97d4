"""The interface every provider adapter implements, and the error mapping they share."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from unigate.v1 import auth_pb2, common_pb2, relay_pb2
from unigate_relay.redirects import CrossOriginRedirect


@dataclass(slots=True)
class CallContext:
    """Everything an adapter needs for one upstream call."""

    request: relay_pb2.RelayRequest
    channel: auth_pb2.Channel
    api_key: str
    http: aiohttp.ClientSession

    def first_byte_seconds(self) -> float | None:
        """How long to wait for the provider's response headers."""
        if self.channel.timeout_ms > 0:
            return self.channel.timeout_ms / 1000
        return self.http.timeout.sock_read

    def timeout(self) -> aiohttp.ClientTimeout:
        """The channel's own first-byte / between-chunks timeout, else the relay's default."""
        if self.channel.timeout_ms <= 0:
            return self.http.timeout
        seconds = self.channel.timeout_ms / 1000
        return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


class Provider(abc.ABC):
    """One provider family: its request/response conversion, stream handling and auth."""

    family: ClassVar[str]
    channel_types: ClassVar[tuple[int, ...]]
    # Endpoints ("chat.completions", "embeddings", ...) this provider can serve.
    endpoints: ClassVar[frozenset[str]]
    # The structured-output formats (OpenAI's response_format types beyond "text") its chat
    # can express; a request for any other is refused with a 400, never sent without it.
    response_formats: ClassVar[frozenset[str]] = frozenset()

    def serves(self, endpoint: str, channel_type: int, upstream_model: str) -> bool:
        """Whether channels of ``channel_type`` serve ``endpoint`` natively for
        ``upstream_model`` (else the relay's translation layer may serve it through another of
        the family's endpoints). A family whose channel types differ (the OpenAI-compatible
        ones) or whose models speak different protocols (Claude on Vertex) narrows it."""
        return endpoint in self.endpoints

    def chat_output_field(self, channel_type: int) -> str:
        """The field of a chat request that carries an injected output limit (the family's
        request builder carries it on into the provider's own field)."""
        return "max_tokens"

    @abc.abstractmethod
    async def call(self, ctx: CallContext) -> relay_pb2.RelayResult:
        """A non-streaming call; returns the OpenAI-shaped body and exact usage."""

    @abc.abstractmethod
    def stream(self, ctx: CallContext) -> AsyncIterator[relay_pb2.RelayChunk]:
        """A streaming call: OpenAI-framed SSE bytes, then exactly one ``end`` message."""


def relay_error(
    status: int,
    message: str,
    *,
    type: str = "upstream_error",
    code: str = "",
    retryable: bool = False,
    upstream_status: int = 0,
    retry_after: float = 0.0,
    fatal: bool = False,
) -> relay_pb2.RelayError:
    return relay_pb2.RelayError(
        error=common_pb2.ClientError(http_status=status, type=type, code=code, message=message),
        retryable=retryable,
        upstream_status=upstream_status,
        retry_after=retry_after,
        fatal=fatal,
    )


def client_mistake(message: str, *, code: str = "", param: str = "") -> relay_pb2.RelayError:
    """The client's request cannot be served as asked: its 400, not retried elsewhere."""
    err = relay_error(400, message, type="invalid_request_error", code=code)
    err.error.param = param
    return err


def credentials_rejected(
    upstream_status: int = 401,
    message: str = "The upstream provider rejected this channel's credentials.",
) -> relay_pb2.RelayError:
    """The provider refused the channel's key (``message``, in the provider's words where it
    gave any, secrets scrubbed; ``upstream_status`` 0 when the key was refused before any
    call, unusable as written): retry elsewhere and disable the channel."""
    return relay_error(
        502,
        message,
        code="upstream_auth_failed",
        retryable=True,
        upstream_status=upstream_status,
        fatal=True,
    )


def channel_misconfigured(message: str) -> relay_pb2.RelayError:
    """The channel lacks a setting its provider needs (``message`` says which): nothing can be
    sent, so it is disabled (fatal) and another channel may serve (retryable)."""
    return relay_error(
        502, message, code="upstream_misconfigured", retryable=True, upstream_status=0, fatal=True
    )


def quota_exhausted(upstream_status: int) -> relay_pb2.RelayError:
    """The channel's provider account has no credit or quota left: retry elsewhere and
    disable the channel."""
    return relay_error(
        502,
        "The upstream provider account behind this channel has no quota left.",
        code="upstream_quota_exhausted",
        retryable=True,
        upstream_status=upstream_status,
        fatal=True,
    )


def rate_limited(
    message: str,
    *,
    type: str = "rate_limit_error",
    code: str = "rate_limit_exceeded",
    upstream_status: int = 429,
    retry_after: float = 0.0,
) -> relay_pb2.RelayError:
    """The provider's rate limit for this channel: the client's 429, retried elsewhere."""
    return relay_error(
        429,
        message,
        type=type,
        code=code,
        retryable=True,
        upstream_status=upstream_status,
        retry_after=retry_after,
    )


def provider_failed(
    text: str,
    *,
    status: int = 502,
    upstream_status: int = 502,
    code: str = "upstream_error",
    retry_after: float = 0.0,
) -> relay_pb2.RelayError:
    """The provider's own failure (``text`` says which): retried elsewhere."""
    return relay_error(
        status,
        f"The upstream provider failed: {text}",
        code=code,
        retryable=True,
        upstream_status=upstream_status,
        retry_after=retry_after,
    )


def unreadable_answer(upstream_status: int) -> relay_pb2.RelayError:
    """The provider's answer (HTTP ``upstream_status``) could not be parsed or understood."""
    return relay_error(
        502,
        "The upstream provider returned an answer that could not be read.",
        code="bad_upstream_response",
        retryable=True,
        upstream_status=upstream_status,
    )


def has_usage(usage: common_pb2.Usage) -> bool:
    """Whether ``usage`` says anything was used (tokens, or units of a unit-priced call)."""
    return bool(
        usage.prompt_tokens or usage.completion_tokens or usage.total_tokens or usage.quantity
    )


def unreadable_but_used(
    upstream_status: int, usage: common_pb2.Usage, upstream_ms: int = 0
) -> relay_pb2.RelayResult:
    """The result for a provider's success that could not be read or translated into the
    client's protocol. By the money rule, usage the provider reported is work it did: it
    stays on the result and is billed, and such an attempt is then not retried elsewhere
    (another attempt's usage would replace it: the ledger would not show what was used).
    With nothing used, it is retried like any unreadable answer."""
    error = unreadable_answer(upstream_status)
    if not has_usage(usage):
        return relay_pb2.RelayResult(error=error, upstream_ms=upstream_ms)
    error.retryable = False
    return relay_pb2.RelayResult(error=error, usage=usage, upstream_ms=upstream_ms)


def stream_truncated() -> relay_pb2.RelayError:
    """The provider's stream ended (or broke) before its last event."""
    return relay_error(
        502, "The upstream stream ended before it was complete.", code="upstream_stream_truncated"
    )


def upstream_unreachable() -> relay_pb2.RelayError:
    """No answer could be had from the provider (connection, DNS, TLS...)."""
    return relay_error(
        502, "Could not reach the upstream provider.", code="upstream_unreachable", retryable=True
    )


# Codes of failures that say something about the channel's health (not the client's input,
# not unigate's own plumbing).
CHANNEL_FAILURE_CODES = frozenset(
    {
        "upstream_timeout",
        "upstream_unreachable",
        "bad_upstream_response",
        "upstream_stream_truncated",
    }
)


def is_channel_failure(err: relay_pb2.RelayError) -> bool:
    return (
        err.fatal
        or err.upstream_status == 429
        or err.upstream_status >= 500
        or err.error.code in CHANNEL_FAILURE_CODES
    )


# How providers word "this channel's account cannot be used" (checked lower-cased).
_FATAL_PHRASES = (
    "insufficient_quota",
    "exceeded your current quota",
    "account deactivated",
    "account has been deactivated",
    "billing",
    "invalid api key",
    "incorrect api key",
    "invalid_api_key",
    "arrearage",
    "balance is insufficient",
    "insufficient balance",
)


# How a 400 says the key itself was refused (xAI: "Incorrect API key provided: xa***Q6").
_KEY_REJECTED_PHRASES = (
    "incorrect api key",
    "invalid api key",
    "invalid_api_key",
    # Google (the Gemini API's OpenAI-compatible endpoint): 400 INVALID_ARGUMENT.
    "api key not valid",
)


def _retry_after(headers: CIMultiDictProxy[str]) -> float:
    raw = headers.get("retry-after")
    try:
        return max(float(raw), 0.0) if raw else 0.0
    except ValueError:
        return 0.0


# Secrets shorter than this are masked only whole; longer ones also by any run of this many
# of their characters (a provider echoing "sk-...abcd1234efgh" or a key cut in two).
SCRUB_FRAGMENT = 12
_MIN_SECRET = 6


def scrub(text: str, secrets: list[str]) -> str:
    """Remove channel secrets from text that may reach a client or a log: each secret in
    any letter case, and any fragment of ``SCRUB_FRAGMENT`` or more of its characters."""
    # Lower case character by character, so positions in `folded` are positions in `text`.
    folded = "".join(c if len(low := c.lower()) != 1 else low for c in text)
    masked = bytearray(len(text))  # 1 where a character belongs to a secret
    for secret in {s.lower() for s in secrets if s and len(s) >= _MIN_SECRET}:
        size = min(len(secret), SCRUB_FRAGMENT)
        pieces = {secret[i : i + size] for i in range(len(secret) - size + 1)}
        for start in range(len(folded) - size + 1):
            if folded[start : start + size] in pieces:
                masked[start : start + size] = b"\x01" * size
    if not any(masked):
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if not masked[i]:
            out.append(ch)
        elif i == 0 or not masked[i - 1]:
            out.append("***")
    return "".join(out)


def error_from_upstream(
    status: int, body: bytes, headers: CIMultiDictProxy[str], secrets: list[str]
) -> relay_pb2.RelayError:
    """Map a provider's HTTP error to what the client should see.

    The client's own mistakes (400, 404, 413, 422) pass through with the provider's words.
    Problems of the channel (its key, its rate limit, its health) are retryable on another
    channel and never shown as the client's 401/403.
    """
    message, code, etype = _upstream_message(body)
    message = scrub(message or f"upstream answered HTTP {status}", secrets)
    if status == 400 and any(p in message.lower() for p in _KEY_REJECTED_PHRASES):
        # xAI refuses a wrong key with 400, not 401: still the channel's key, not the client.
        status = 401
    if status == 402:
        # Payment Required: the account's credit is spent (OpenRouter, DeepSeek).
        return quota_exhausted(status)
    if status in (400, 404, 413, 422):
        return relay_error(
            status,
            message,
            type=etype or "invalid_request_error",
            code=code,
            upstream_status=status,
        )
    fatal_words = any(p in f"{code} {message}".lower() for p in _FATAL_PHRASES)
    if status == 429 and fatal_words:
        return quota_exhausted(status)
    if status == 429:
        return rate_limited(
            message,
            type=etype or "rate_limit_error",
            code=code or "rate_limit_exceeded",
            retry_after=_retry_after(headers),
        )
    if status == 403 and not fatal_words:
        # A refusal of this particular request (e.g. a model not allowed on an endpoint).
        return relay_error(
            403, message, type=etype or "permission_error", code=code, upstream_status=status
        )
    if status in (401, 403):
        return credentials_rejected(status)
    return provider_failed(
        message,
        status=503 if status == 503 else 502,
        upstream_status=status,
        code=code or "upstream_error",
        retry_after=_retry_after(headers),
    )


def _upstream_message(body: bytes) -> tuple[str, str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:500].decode(errors="replace").strip(), "", ""
    if isinstance(data, list) and len(data) == 1:
        # Google's OpenAI-compatible endpoint wraps its error object in a list.
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return (
            str(err.get("message") or ""),
            str(err.get("code") or ""),
            str(err.get("type") or ""),
        )
    if isinstance(err, str):
        return err, "", ""
    if isinstance(data, dict) and "message" in data:
        # Mistral's 422 nests pydantic's list: {"message": {"detail": [{"loc", "msg"}]}}.
        detail = data["message"].get("detail") if isinstance(data["message"], dict) else None
        if isinstance(detail, list):
            return "; ".join(_pydantic_entry(d) for d in detail), "", str(data.get("type") or "")
        return str(data["message"]), "", ""
    return "", "", ""


def _pydantic_entry(entry: object) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    loc = ".".join(str(part) for part in entry.get("loc") or [] if part != "body")
    return f"{loc}: {entry.get('msg')}" if loc else str(entry.get("msg"))


# What a failed upstream exchange can raise (aiohttp wraps most, not timeouts).
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)
# How long a stream whose last event came may take to end its response. Providers end it at
# once (the connection then goes back to the pool); one that holds it open would otherwise
# hold back the client's terminal frame, which the relay sends only with the stream's end.
DRAIN_SECONDS = 0.5


async def drained(resp: aiohttp.ClientResponse) -> bool:
    """Read what is left of a finished stream's response (nothing, normally); whether it
    ended in time, so that the connection can be reused."""
    try:
        await asyncio.wait_for(resp.content.read(), DRAIN_SECONDS)
    except UPSTREAM_ERRORS:
        return False
    return True


def error_from_exception(exc: BaseException) -> relay_pb2.RelayError:
    if isinstance(exc, TimeoutError):
        return relay_error(
            504, "The upstream provider timed out.", code="upstream_timeout", retryable=True
        )
    if isinstance(exc, CrossOriginRedirect):
        return relay_error(
            502,
            "The upstream provider redirected to another origin; the redirect was not followed.",
            code="upstream_redirect",
            retryable=True,
        )
    return upstream_unreachable()
