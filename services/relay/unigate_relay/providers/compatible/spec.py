"""What makes one OpenAI-like provider different from OpenAI: where it lives, how its paths
are laid out, what it refuses and where its stream reports usage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from unigate.v1 import relay_pb2

# A provider's own error envelope, read before the shared OpenAI-style table: (HTTP status,
# body, the channel's secrets) -> the relay's error, or None to use the shared table.
ErrorMap = Callable[[int, bytes, list[str]], relay_pb2.RelayError | None]

# Every endpoint of the OpenAI protocol, relative to the provider's API root.
ENDPOINT_PATHS: dict[str, str] = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "moderations": "/moderations",
    "images.generations": "/images/generations",
    "audio.speech": "/audio/speech",
    "audio.transcriptions": "/audio/transcriptions",
    "audio.translations": "/audio/translations",
    "rerank": "/rerank",
    "responses": "/responses",
}

CHAT = frozenset({"chat.completions"})
CHAT_AND_EMBEDDINGS = frozenset({"chat.completions", "embeddings"})


@dataclass(frozen=True, slots=True)
class CompatibleSpec:
    """One provider speaking the OpenAI protocol with its own differences.

    ``path_prefix`` goes between the base URL and the endpoint path: "" when the base URL
    already carries the API version (``https://api.moonshot.cn/v1``), "/v1" for OpenAI-style
    roots (``https://api.openai.com``).
    """

    channel_type: int
    name: str
    default_base_url: str
    path_prefix: str = ""
    endpoints: frozenset[str] = CHAT
    # Request fields the provider rejects; removed from the body before it is sent. If
    # "stream_options" is among them, the provider must report stream usage on its own.
    drop_fields: frozenset[str] = frozenset()
    # Where a stream chunk carries usage besides the top-level "usage" (Groq: x_groq.usage;
    # a digit indexes a list, Moonshot: choices.0.usage).
    stream_usage_path: tuple[str, ...] | None = None
    default_models: tuple[str, ...] = ()
    # The field an output limit unigate injects into a chat request goes in: max_tokens,
    # which every OpenAI-like provider reads (OpenAI itself: max_completion_tokens).
    chat_output_field: str = "max_tokens"
    # How it takes OpenAI's ``response_format``: "json_schema" passes through as OpenAI's;
    # "json_object" (JSON mode only) sends a json_schema format as json_object with the schema
    # in a system message (``unigate_relay.providers.json_mode``).
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    # False when the ``usage`` the provider sends is not a count (FastGPT: always 1/1/1):
    # it is ignored, streams are not asked for it, and every call is counted (estimated).
    reports_usage: bool = True
    # The provider's own error envelope (FastGPT: HTTP 500 with an inner ``code``).
    error_map: ErrorMap | None = None

    def url(self, base_url: str, endpoint: str, model: str = "", config_json: str = "") -> str:
        """The full URL of ``endpoint`` for a channel whose base URL is ``base_url`` (empty
        for the provider's default). ``model`` (the upstream model) and ``config_json`` (the
        channel's per-type settings) matter only to providers that route by them (Azure)."""
        base = (base_url or self.default_base_url).rstrip("/")
        return base + self.path_prefix + ENDPOINT_PATHS[endpoint]

    def body_model(self, endpoint: str, model: str, config_json: str) -> str:
        """The ``model`` the request body must carry (``model`` is the upstream model): itself,
        except for providers that route by a name of their own there (Azure's deployment)."""
        return model

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the channel's key."""
        return {"Authorization": f"Bearer {api_key}"}

    @property
    def asks_stream_usage(self) -> bool:
        """Whether the relay may add ``stream_options.include_usage`` to stream requests."""
        return self.reports_usage and "stream_options" not in self.drop_fields

    def asks_stream_usage_for(self, config_json: str) -> bool:
        """:attr:`asks_stream_usage` for one channel, for providers where it depends on the
        channel's settings (Azure: its API version)."""
        return self.asks_stream_usage
