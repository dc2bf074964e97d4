"""What the relay sends to an Azure OpenAI channel: deployment URL with api-version, the
``api-key`` header, and stream_options only on versions that accept it."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import orjson
import pytest

from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.compatible.azure import DEFAULT_API_VERSION, azure_settings
from unigate_relay.providers.openai import OpenAIProvider

BASE = "https://res.openai.azure.com/"


def ctx(
    upstream_model: str,
    config: dict[str, Any] | None = None,
    endpoint: str = "chat.completions",
    body: dict[str, Any] | None = None,
) -> CallContext:
    raw = orjson.dumps(body if body is not None else {"model": upstream_model, "messages": []})
    return CallContext(
        request=relay_pb2.RelayRequest(
            endpoint=endpoint,
            channel_type=3,
            body=raw,
            model=upstream_model,
            upstream_model=upstream_model,
        ),
        channel=auth_pb2.Channel(
            type=3,
            base_url=BASE,
            keys=["azure-key"],
            config_json=orjson.dumps(config or {}).decode(),
            headers_json='{"x-trace": "1"}',
        ),
        api_key="azure-key",
        http=cast(aiohttp.ClientSession, None),  # not used to build requests
    )


@pytest.mark.parametrize(
    ("model", "config", "endpoint", "url"),
    [
        (
            "gpt-3.5-turbo",
            None,
            "chat.completions",
            "https://res.openai.azure.com/openai/deployments/gpt-35-turbo/chat/completions"
            f"?api-version={DEFAULT_API_VERSION}",
        ),
        (
            "gpt-4.1",
            {"api_version": "2025-04-01-preview", "deployments": {"gpt-4.1": "prod 4.1"}},
            "embeddings",
            "https://res.openai.azure.com/openai/deployments/prod%204.1/embeddings"
            "?api-version=2025-04-01-preview",
        ),
        (
            "whisper-1",
            {"api_version": "2024-06-01"},
            "audio.translations",
            "https://res.openai.azure.com/openai/deployments/whisper-1/audio/translations"
            "?api-version=2024-06-01",
        ),
        # A config that is not what Azure needs falls back to the defaults.
        (
            "dall-e-3",
            {"api_version": 7, "deployments": ["x"]},
            "images.generations",
            "https://res.openai.azure.com/openai/deployments/dall-e-3/images/generations"
            f"?api-version={DEFAULT_API_VERSION}",
        ),
    ],
)
def test_deployment_urls(
    model: str, config: dict[str, Any] | None, endpoint: str, url: str
) -> None:
    assert OpenAIProvider()._url(ctx(model, config, endpoint)) == url


def test_the_key_goes_in_api_key_never_as_bearer() -> None:
    headers = OpenAIProvider()._headers(ctx("gpt-4o"), form=False)
    assert headers["api-key"] == "azure-key"
    assert "Authorization" not in headers
    assert headers["x-trace"] == "1"  # the channel's own headers still apply


def test_stream_usage_is_asked_only_of_versions_that_accept_it() -> None:
    body = {"model": "gpt-4o", "messages": [], "stream": True}

    def sent(config: dict[str, Any]) -> dict[str, Any]:
        out = OpenAIProvider()._body(ctx("gpt-4o", config, body=body), stream=True)
        assert isinstance(out, bytes)
        parsed: dict[str, Any] = orjson.loads(out)
        return parsed

    assert sent({})["stream_options"] == {"include_usage": True}
    assert sent({"api_version": "2025-04-01-preview"})["stream_options"] == {"include_usage": True}
    assert "stream_options" not in sent({"api_version": "2024-02-01"})


def test_settings_are_parsed_once_per_config() -> None:
    config = '{"api_version": "2024-10-21", "deployments": {"a.b": "ab-prod"}}'
    assert azure_settings(config) is azure_settings(config)
    assert azure_settings(config).deployment("a.b") == "ab-prod"
    assert azure_settings(config).deployment("c.d") == "cd"
    assert azure_settings("not json").api_version == DEFAULT_API_VERSION
