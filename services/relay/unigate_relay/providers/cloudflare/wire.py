"""Where Cloudflare Workers AI's OpenAI-compatible endpoints live.

Reference: Cloudflare "OpenAI compatible API endpoints" (Workers AI):
``https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1/chat/completions`` and
``…/ai/v1/embeddings``, ``Authorization: Bearer <API token>``; through an AI Gateway the base
is ``https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}/workers-ai`` and the same
``/v1/…`` paths follow it (One API's cloudflare adaptor: the account id is the channel
config's ``user_id``; here ``account_id``, or ``user_id`` as One API stores it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from unigate_relay.providers.compatible.spec import CHAT_AND_EMBEDDINGS, CompatibleSpec

DEFAULT_BASE_URL: Final = "https://api.cloudflare.com"
_GATEWAY: Final = "https://gateway.ai.cloudflare.com"
MISSING_ACCOUNT: Final = (
    'The Cloudflare channel needs its account id in the config: {"account_id": "..."}.'
)


class MissingAccount(ValueError):
    """A channel without the Cloudflare account id its URLs need."""


def account_id(config_json: str) -> str:
    """The channel config's account id (``account_id``, or One API's ``user_id``)."""
    try:
        config: Any = orjson.loads(config_json) if config_json else {}
    except orjson.JSONDecodeError:
        config = {}
    if isinstance(config, dict):
        for name in ("account_id", "user_id"):
            value = config.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def is_gateway(base_url: str) -> bool:
    base = base_url.rstrip("/")
    return base.startswith(_GATEWAY) and base.endswith("/workers-ai")


@dataclass(frozen=True, slots=True)
class CloudflareSpec(CompatibleSpec):
    """The OpenAI layout below ``/client/v4/accounts/{account_id}/ai/v1``."""

    def url(self, base_url: str, endpoint: str, model: str = "", config_json: str = "") -> str:
        base = (base_url or self.default_base_url).rstrip("/")
        path = "/v1" + ("/chat/completions" if endpoint == "chat.completions" else "/embeddings")
        if is_gateway(base):
            return base + path
        account = account_id(config_json)
        if not account:
            raise MissingAccount(MISSING_ACCOUNT)
        return f"{base}/client/v4/accounts/{account}/ai{path}"


SPEC = CloudflareSpec(
    channel_type=37,
    name="Cloudflare Workers AI",
    default_base_url=DEFAULT_BASE_URL,
    endpoints=CHAT_AND_EMBEDDINGS,
    default_models=(
        "@cf/meta/llama-3.1-8b-instruct",
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "@cf/mistral/mistral-7b-instruct-v0.1",
        "@cf/baai/bge-large-en-v1.5",
    ),
)
