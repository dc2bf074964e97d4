"""What the relay sends to an Azure OpenAI channel: deployment URL with api-version, the
``api-key`` header, and stream_options only on versions that accept it."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import orjson
import pytest

from unigate.v1 import auth_pb2, relay_pb2
from unigate_relay.providers.base import CallContext
from unigate_relay.providers.compatible.azure import (
    DEFAULT_API_VERSION,
    RESPONSES_API_VERSION,
    azure_settings,
)
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


V1 = {"api_layout": "v1", "deployments": {"gpt-4.1": "prod-4.1"}}
# Spaced as orjson never writes it, so a re-encoded body would differ.
CLIENT_BYTES = b'{"model": "gpt-4o", "messages": []}'


@pytest.mark.parametrize(
    ("model", "config", "endpoint", "url"),
    [
        # The v1 layout: OpenAI's paths under /openai/v1, never an api-version.
        ("gpt-4.1", V1, "chat.completions", f"{BASE}openai/v1/chat/completions"),
        ("gpt-4o", {**V1, "api_version": "2024-02-01"}, "responses", f"{BASE}openai/v1/responses"),
        ("whisper-1", V1, "audio.transcriptions", f"{BASE}openai/v1/audio/transcriptions"),
        ("dall-e-3", V1, "images.generations", f"{BASE}openai/v1/images/generations"),
        # The classic layout's Responses API: not under the deployment, a preview version.
        (
            "gpt-4o",
            None,
            "responses",
            f"{BASE}openai/responses?api-version={RESPONSES_API_VERSION}",
        ),
        (
            "gpt-4o",
            {"api_version": "2025-03-01-preview"},
            "responses",
            f"{BASE}openai/responses?api-version=2025-03-01-preview",
        ),
        # A GA or older preview version does not serve /openai/responses: the default does.
        (
            "gpt-4o",
            {"api_version": "2024-12-01-preview"},
            "responses",
            f"{BASE}openai/responses?api-version={RESPONSES_API_VERSION}",
        ),
        # An unknown layout is the classic one.
        (
            "gpt-4o",
            {"api_layout": "v2"},
            "embeddings",
            f"{BASE}openai/deployments/gpt-4o/embeddings?api-version={DEFAULT_API_VERSION}",
        ),
    ],
)
def test_v1_and_responses_urls(
    model: str, config: dict[str, Any] | None, endpoint: str, url: str
) -> None:
    assert OpenAIProvider()._url(ctx(model, config, endpoint)) == url


def _sent(out: bytes | aiohttp.FormData) -> dict[str, Any]:
    assert isinstance(out, bytes)
    parsed: dict[str, Any] = orjson.loads(out)
    return parsed


def test_v1_bodies_name_the_deployment() -> None:
    provider = OpenAIProvider()
    # A mapped deployment, and the dotless rule, as on the classic layout.
    mapped = ctx("gpt-4.1", V1, body={"model": "gpt-4.1", "messages": []})
    assert _sent(provider._body(mapped, stream=False))["model"] == "prod-4.1"
    dotless = ctx("gpt-3.5-turbo", V1, body={"model": "gpt-3.5-turbo", "messages": []})
    assert _sent(provider._body(dotless, stream=False))["model"] == "gpt-35-turbo"
    # v1 takes stream_options whatever api_version the config still carries.
    old = {**V1, "api_version": "2024-02-01"}
    streamed = ctx("gpt-4o", old, body={"model": "gpt-4o", "messages": [], "stream": True})
    assert _sent(provider._body(streamed, stream=True))["stream_options"] == {"include_usage": True}
    # A body already naming its deployment passes through as the client's bytes.
    same = ctx("gpt-4o", V1)
    same.request.body = CLIENT_BYTES
    assert provider._body(same, stream=False) == CLIENT_BYTES


def test_responses_body_names_the_deployment_on_both_layouts() -> None:
    classic = {"deployments": {"gpt-4.1": "classic-4.1"}}
    for config, deployment in ((classic, "classic-4.1"), (V1, "prod-4.1")):
        call = ctx("gpt-4.1", config, "responses", {"model": "gpt-4.1", "input": "hi"})
        sent = _sent(OpenAIProvider()._body(call, stream=True))
        # The Responses API reports usage on its own: no stream_options is added.
        assert sent == {"model": deployment, "input": "hi"}


def test_classic_deployment_bodies_are_passed_through_untouched() -> None:
    # The deployment is in the path: the body keeps the client's bytes, not re-encoded.
    call = ctx("gpt-4o", {"deployments": {"gpt-4o": "prod-4o"}})
    call.request.body = CLIENT_BYTES
    assert OpenAIProvider()._body(call, stream=False) == CLIENT_BYTES


def test_v1_multipart_forms_name_the_deployment() -> None:
    boundary = "b0undary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\nRIFF\r\n--{boundary}--\r\n"
    ).encode()
    call = ctx("whisper-1", {**V1, "deployments": {"whisper-1": "whisper"}})
    call.request.endpoint = "audio.transcriptions"
    call.request.body = form
    call.request.content_type = f"multipart/form-data; boundary={boundary}"
    out = OpenAIProvider()._body(call, stream=False)
    assert isinstance(out, aiohttp.FormData)
    fields = {f[0]["name"]: f[2] for f in out._fields}
    assert fields["model"] == "whisper"


def test_layout_settings() -> None:
    assert azure_settings('{"api_layout": "v1"}').v1
    assert not azure_settings("{}").v1
    assert azure_settings('{"api_layout": "v1"}').takes_stream_options
    assert azure_settings('{"api_version": "2025-04-01-preview"}').responses_api_version == (
        "2025-04-01-preview"
    )
    assert azure_settings('{"api_version": "2024-10-21"}').responses_api_version == (
        RESPONSES_API_VERSION
    )
