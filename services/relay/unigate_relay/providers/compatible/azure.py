"""Azure OpenAI (One API channel type 3): the OpenAI protocol per deployment.

``POST {base_url}/openai/deployments/{deployment}/{endpoint}?api-version={version}`` with the
key in an ``api-key`` header (Azure reads ``Authorization: Bearer`` as an Entra ID token, so a
resource key sent that way is refused). The base URL is the resource endpoint
(``https://<resource>.openai.azure.com``); there is no default.

The channel's config JSON may carry:

* ``api_version`` — default :data:`DEFAULT_API_VERSION` (the newest GA inference version);
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

DEFAULT_API_VERSION = "2024-10-21"
# Versions dated before this reject stream_options ("Unrecognized request argument"); it
# first works in the 2024-10-21 GA, so older channels get counted usage instead.
_STREAM_OPTIONS_SINCE = "2024-10-01"
_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})")

# What Azure serves under /openai/deployments/{deployment}. Moderations and rerank do not
# exist there, and the Responses API lives elsewhere (/openai/responses, /openai/v1).
AZURE_ENDPOINTS = frozenset(
    {
        "chat.completions",
        "completions",
        "embeddings",
        "images.generations",
        "audio.speech",
        "audio.transcriptions",
        "audio.translations",
    }
)


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """The Azure part of a channel's config JSON."""

    api_version: str = DEFAULT_API_VERSION
    deployments: dict[str, str] = field(default_factory=dict)

    def deployment(self, model: str) -> str:
        return self.deployments.get(model) or model.replace(".", "")

    @property
    def takes_stream_options(self) -> bool:
        dated = _DATED.match(self.api_version)
        return dated is None or dated.group(1) >= _STREAM_OPTIONS_SINCE


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
    return AzureSettings(
        api_version=(
            version.strip() if isinstance(version, str) and version.strip() else DEFAULT_API_VERSION
        ),
        deployments=(
            {str(k): v for k, v in deployments.items() if isinstance(v, str) and v}
            if isinstance(deployments, dict)
            else {}
        ),
    )


@dataclass(frozen=True, slots=True)
class AzureSpec(CompatibleSpec):
    def url(self, base_url: str, endpoint: str, model: str = "", config_json: str = "") -> str:
        settings = azure_settings(config_json)
        deployment = quote(settings.deployment(model), safe="")
        version = quote(settings.api_version, safe="")
        return (
            f"{base_url.rstrip('/')}/openai/deployments/{deployment}"
            f"{ENDPOINT_PATHS[endpoint]}?api-version={version}"
        )

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
