"""Azure OpenAI (One API channel type 3): the OpenAI protocol per deployment, in one of two
layouts chosen by the channel's config JSON (``api_layout``).

``"deployments"`` (the default, Azure's classic data-plane API):
``POST {base_url}/openai/deployments/{deployment}/{endpoint}?api-version={version}``; the
deployment is in the path and the body's ``model`` is left as the client sent it (Azure ignores
it). The Responses API is not under a deployment there: it is
``POST {base_url}/openai/responses?api-version={version}`` with the deployment as the body's
``model``, and only preview versions from :data:`RESPONSES_SINCE` serve it, so a channel whose
``api_version`` is older uses :data:`RESPONSES_API_VERSION` for that one endpoint.

``"v1"`` (Azure's v1 API, GA since August 2025): ``POST {base_url}/openai/v1/{endpoint}``,
OpenAI's own layout, with no ``api-version`` at all; the deployment goes in the body's
``model`` (JSON, or the ``model`` field of a multipart form), which the relay rewrites.

Either way the key goes in an ``api-key`` header (Azure reads ``Authorization: Bearer`` as an
Entra ID token, so a resource key sent that way is refused). The base URL is the resource
endpoint (``https://<resource>.openai.azure.com``); there is no default.

The channel's config JSON may carry:

* ``api_layout`` — ``"deployments"`` (default) or ``"v1"``; anything else is the default;
* ``api_version`` — default :data:`DEFAULT_API_VERSION` (the newest GA inference version);
  classic layout only;
* ``deployments`` — ``{"<upstream model>": "<deployment name>"}``, exact names.

A model without a ``deployments`` entry is served by the deployment named like the upstream
model (after the channel's ``model_mapping``) with its dots removed, One API's rule, so
channels moved from One API keep working: ``gpt-3.5-turbo`` → ``gpt-35-turbo``, which is
also Azure's own name of that model. Newer Azure model names keep their dots (``gpt-4.1``);
a deployment named that way needs a ``deployments`` entry.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

from unigate_relay.providers.compatible.spec import ENDPOINT_PATHS, CompatibleSpec
from unigate_relay.providers.declaration import declare_spec

DEFAULT_API_VERSION = "2024-10-21"
# Versions dated before this reject stream_options ("Unrecognized request argument"); it
# first works in the 2024-10-21 GA, so older channels get counted usage instead.
_STREAM_OPTIONS_SINCE = "2024-10-01"
_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})")
# The classic layout's Responses API (/openai/responses) came with 2025-03-01-preview and is
# served by preview versions only.
RESPONSES_SINCE = "2025-03-01"
RESPONSES_API_VERSION = "2025-04-01-preview"

LAYOUT_DEPLOYMENTS = "deployments"
LAYOUT_V1 = "v1"

# What Azure serves to this relay: the deployment endpoints (moderations and rerank do not
# exist on Azure) and the Responses API.
AZURE_ENDPOINTS = frozenset(
    {
        "chat.completions",
        "completions",
        "embeddings",
        "images.generations",
        "audio.speech",
        "audio.transcriptions",
        "audio.translations",
        "responses",
    }
)


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """The Azure part of a channel's config JSON."""

    api_version: str = DEFAULT_API_VERSION
    deployments: dict[str, str] = field(default_factory=dict)
    api_layout: str = LAYOUT_DEPLOYMENTS

    def deployment(self, model: str) -> str:
        return self.deployments.get(model) or model.replace(".", "")

    @property
    def v1(self) -> bool:
        return self.api_layout == LAYOUT_V1

    @property
    def takes_stream_options(self) -> bool:
        if self.v1:
            return True
        dated = _DATED.match(self.api_version)
        return dated is None or dated.group(1) >= _STREAM_OPTIONS_SINCE

    @property
    def responses_api_version(self) -> str:
        """The channel's version if it serves ``/openai/responses``, else
        :data:`RESPONSES_API_VERSION`."""
        dated = _DATED.match(self.api_version)
        if (
            dated is not None
            and dated.group(1) >= RESPONSES_SINCE
            and "preview" in self.api_version
        ):
            return self.api_version
        return RESPONSES_API_VERSION


@functools.lru_cache(maxsize=1024)
def azure_settings(config_json: str) -> AzureSettings:
    """Parsed once per distinct config (the relay sees the same few strings on every call)."""
    try:
        raw = orjson.loads(config_json) if config_json else {}
    except orjson.JSONDecodeError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    version = raw.get("api_version")
    deployments = raw.get("deployments")
    layout = raw.get("api_layout")
    return AzureSettings(
        api_version=(
            version.strip() if isinstance(version, str) and version.strip() else DEFAULT_API_VERSION
        ),
        deployments=(
            {str(k): v for k, v in deployments.items() if isinstance(v, str) and v}
            if isinstance(deployments, dict)
            else {}
        ),
        api_layout=LAYOUT_V1 if layout == LAYOUT_V1 else LAYOUT_DEPLOYMENTS,
    )


@dataclass(frozen=True, slots=True)
class AzureSpec(CompatibleSpec):
    def url(self, base_url: str, endpoint: str, model: str = "", config_json: str = "") -> str:
        settings = azure_settings(config_json)
        base = base_url.rstrip("/")
        if settings.v1:
            return f"{base}/openai/v1{ENDPOINT_PATHS[endpoint]}"
        if endpoint == "responses":
            version = quote(settings.responses_api_version, safe="")
            return f"{base}/openai/responses?api-version={version}"
        deployment = quote(settings.deployment(model), safe="")
        version = quote(settings.api_version, safe="")
        return (
            f"{base}/openai/deployments/{deployment}"
            f"{ENDPOINT_PATHS[endpoint]}?api-version={version}"
        )

    def body_model(self, endpoint: str, model: str, config_json: str) -> str:
        # Outside the deployment paths Azure finds the deployment by the body's model.
        settings = azure_settings(config_json)
        if settings.v1 or endpoint == "responses":
            return settings.deployment(model)
        return model

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key}

    def asks_stream_usage_for(self, config_json: str) -> bool:
        return self.asks_stream_usage and azure_settings(config_json).takes_stream_options


SPEC = AzureSpec(
    channel_type=3,
    name="Azure OpenAI",
    default_base_url="",
    endpoints=AZURE_ENDPOINTS,
    default_models=(
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-3.5-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "dall-e-3",
        "whisper",
        "tts",
    ),
)

CHANNEL = declare_spec(
    SPEC,
    key_hint="Azure resource key (32 hex characters)",
    key_pattern=r"^[0-9a-fA-F]{32}$",
    config_hint='{"api_version": "2024-10-21", "deployments": {"gpt-4o": "my-gpt4o"}}',
    gen_ai_system="az.ai.openai",
)
