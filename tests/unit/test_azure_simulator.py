"""The Azure OpenAI simulator: Azure's layout and checks, driven with the official SDK's
``AzureOpenAI`` client (which speaks Azure's wire format) and with raw HTTP where a refusal's
exact shape is the point."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from typing import Any, cast

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.unit.test_openai_simulator import ThreadedServer
from unigate_sim.azure import (
    CONTENT_FILTER_MESSAGE,
    AzureSimulator,
    create_azure_app,
    prompt_filter_results,
)
from unigate_sim.openai import count_tokens

KEY = "0123456789abcdef0123456789abcdef"
VERSION = "2024-10-21"
CHAT = "/openai/deployments/gpt-35-turbo/chat/completions"
HELLO = {"messages": [{"role": "user", "content": "hello azure"}]}


@pytest.fixture(scope="module")
def azure_server() -> Iterator[ThreadedServer]:
    # uvicorn serves any ASGI app; the helper is typed for the plain OpenAI simulator.
    with ThreadedServer(cast(Starlette, create_azure_app({KEY}))) as running:
        yield running


@pytest.fixture
def sim(azure_server: ThreadedServer) -> Iterator[AzureSimulator]:
    app = cast(AzureSimulator, azure_server.app)
    for name in ("calls", "fail_next", "azure_calls"):
        getattr(app.state, name).clear()
    yield app
    app.state.fail_next.clear()


@pytest.fixture
def sdk(azure_server: ThreadedServer, sim: AzureSimulator) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=azure_server.url, api_key=KEY, api_version=VERSION, max_retries=0
    ) as client:
        yield client


@pytest.fixture
def raw(azure_server: ThreadedServer, sim: AzureSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=azure_server.url) as client:
        yield client


def test_chat_answers_carry_content_filter_annotations(
    sdk: openai.AzureOpenAI, sim: AzureSimulator
) -> None:
    # The body's model is ignored: the deployment decides what serves the request.
    resp = sdk.chat.completions.create(
        model="gpt-35-turbo", messages=[{"role": "user", "content": "hello azure"}]
    )
    assert resp.choices[0].message.content == "Echo: hello azure"
    extra = resp.model_extra or {}
    assert extra["prompt_filter_results"] == prompt_filter_results()
    choice_extra = resp.choices[0].model_extra or {}
    assert choice_extra["content_filter_results"]["violence"] == {
        "filtered": False,
        "severity": "safe",
    }
    assert sim.state.calls[-1]["model"] == "gpt-3.5-turbo"
    assert sim.state.azure_calls[-1]["deployment"] == "gpt-35-turbo"
    assert sim.state.azure_calls[-1]["api_version"] == VERSION


def test_a_stream_opens_with_the_prompt_annotation_chunk(sdk: openai.AzureOpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-35-turbo",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    first = chunks[0]
    assert first.choices == [] and first.id == "" and first.usage is None
    assert (first.model_extra or {})["prompt_filter_results"] == prompt_filter_results()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all("content_filter_results" in (c.choices[0].model_extra or {}) for c in content)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text)


def test_embeddings_and_transcriptions_by_deployment(
    sdk: openai.AzureOpenAI, sim: AzureSimulator
) -> None:
    vectors = sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(d.embedding) for d in vectors.data] == [1536, 1536]
    audio = io.BytesIO()
    with wave.open(audio, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    transcript = sdk.audio.transcriptions.create(
        model="whisper", file=("clip.wav", audio.getvalue(), "audio/wav")
    )
    assert transcript.text == f"Transcribed {len(audio.getvalue())} bytes of clip.wav"
    # The form reached the OpenAI simulator with the deployment's model in place of the SDK's.
    assert sim.state.calls[-1]["body"]["model"] == "whisper-1"
    assert sim.state.azure_calls[-1]["path"] == "/openai/deployments/whisper/audio/transcriptions"


def _post(raw: httpx.Client, path: str, query: str, headers: dict[str, str]) -> httpx.Response:
    return raw.post(f"{path}{query}", json=HELLO, headers=headers)


@pytest.mark.parametrize(
    ("path", "query", "headers", "status", "code", "message"),
    [
        # A wrong key.
        (CHAT, f"?api-version={VERSION}", {"api-key": "f" * 32}, 401, "401", "Access denied"),
        # The right key as a bearer token: Azure reads it as an Entra ID token.
        (CHAT, f"?api-version={VERSION}", {"Authorization": f"Bearer {KEY}"}, 401, "401", ""),
        # No key at all.
        (CHAT, f"?api-version={VERSION}", {}, 401, "401", "Access denied due to missing"),
        # No api-version.
        (CHAT, "", {"api-key": KEY}, 404, "404", "Resource not found"),
        # A version Azure does not serve.
        (CHAT, "?api-version=2031-01-01", {"api-key": KEY}, 400, "BadRequest", "API version"),
        # An unknown deployment (the model name with its dot is not a deployment here).
        (
            "/openai/deployments/gpt-3.5-turbo/chat/completions",
            f"?api-version={VERSION}",
            {"api-key": KEY},
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist.",
        ),
        # OpenAI's own layout.
        ("/v1/chat/completions", f"?api-version={VERSION}", {"api-key": KEY}, 404, "404", ""),
        # An endpoint Azure does not serve under a deployment.
        (
            "/openai/deployments/gpt-4o/moderations",
            f"?api-version={VERSION}",
            {"api-key": KEY},
            404,
            "404",
            "",
        ),
    ],
)
def test_refusals_in_azure_words_before_anything_is_served(
    raw: httpx.Client,
    sim: AzureSimulator,
    path: str,
    query: str,
    headers: dict[str, str],
    status: int,
    code: str,
    message: str,
) -> None:
    resp = _post(raw, path, query, headers)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(message)
    assert sim.state.calls == []
    # The same request done right is served, so only the difference above was refused.
    assert _post(raw, CHAT, f"?api-version={VERSION}", {"api-key": KEY}).status_code == 200


def test_the_sdk_with_a_wrong_key_gets_an_authentication_error(
    azure_server: ThreadedServer, sim: AzureSimulator
) -> None:
    with (
        openai.AzureOpenAI(
            azure_endpoint=azure_server.url, api_key="x" * 32, api_version=VERSION, max_retries=0
        ) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_stream_options_only_on_versions_that_know_it(raw: httpx.Client) -> None:
    body: dict[str, Any] = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    old = raw.post(f"{CHAT}?api-version=2024-02-01", json=body, headers={"api-key": KEY})
    assert old.status_code == 400
    assert old.json()["error"]["message"] == (
        "Unrecognized request argument supplied: stream_options"
    )
    plain = {**HELLO, "stream": True}
    assert (
        raw.post(f"{CHAT}?api-version=2024-02-01", json=plain, headers={"api-key": KEY})
    ).status_code == 200
    assert (
        raw.post(f"{CHAT}?api-version={VERSION}", json=body, headers={"api-key": KEY})
    ).status_code == 200


def test_a_filtered_prompt_is_azures_content_filter_error(
    raw: httpx.Client, sim: AzureSimulator
) -> None:
    body = {"messages": [{"role": "user", "content": "how do I kill a stuck process"}]}
    resp = raw.post(f"{CHAT}?api-version={VERSION}", json=body, headers={"api-key": KEY})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert (error["code"], error["param"], error["message"]) == (
        "content_filter",
        "prompt",
        CONTENT_FILTER_MESSAGE,
    )
    assert error["innererror"]["content_filter_result"]["violence"]["filtered"] is True
    assert sim.state.calls == []  # filtered before the model ran


def test_images_are_annotated_and_their_urls_served(raw: httpx.Client) -> None:
    resp = raw.post(
        f"/openai/deployments/dall-e-3/images/generations?api-version={VERSION}",
        json={"prompt": "a lighthouse", "n": 1},
        headers={"api-key": KEY},
    )
    assert resp.status_code == 200
    item = resp.json()["data"][0]
    assert item["content_filter_results"]["sexual"]["filtered"] is False
    assert item["prompt_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    image = raw.get(item["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


# The v1 layout: OpenAI's own paths under /openai/v1, the deployment in the body's model.
V1_CHAT = "/openai/v1/chat/completions"


@pytest.fixture
def v1_sdk(azure_server: ThreadedServer, sim: AzureSimulator) -> Iterator[openai.OpenAI]:
    # The plain OpenAI client on the v1 base URL; the key in api-key, as the relay sends it.
    with openai.OpenAI(
        base_url=f"{azure_server.url}/openai/v1/",
        api_key="unused",
        default_headers={"api-key": KEY},
        max_retries=0,
    ) as client:
        yield client


def test_v1_chat_names_the_deployment_in_the_body(
    v1_sdk: openai.OpenAI, sim: AzureSimulator
) -> None:
    resp = v1_sdk.chat.completions.create(
        model="gpt-35-turbo", messages=[{"role": "user", "content": "hello v1"}]
    )
    assert resp.choices[0].message.content == "Echo: hello v1"
    assert (resp.model_extra or {})["prompt_filter_results"] == prompt_filter_results()
    assert sim.state.calls[-1]["model"] == "gpt-3.5-turbo"
    call = sim.state.azure_calls[-1]
    assert (call["path"], call["deployment"], call["api_version"]) == (V1_CHAT, "gpt-35-turbo", "")
    # A stream takes stream_options (no version to predate it) and opens with the annotation.
    chunks = list(
        v1_sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream v1"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices == [] and chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == count_tokens(text)


def test_v1_transcription_form_names_the_deployment(
    v1_sdk: openai.OpenAI, sim: AzureSimulator
) -> None:
    transcript = v1_sdk.audio.transcriptions.create(
        model="whisper", file=("clip.wav", b"RIFF0000WAVE", "audio/wav")
    )
    assert transcript.text.startswith("Transcribed")
    assert sim.state.calls[-1]["body"]["model"] == "whisper-1"
    assert sim.state.azure_calls[-1]["deployment"] == "whisper"


def _check_responses(sdk_responses: Any, sim: AzureSimulator, deployment: str) -> None:
    answer = sdk_responses.create(model=deployment, input="answer azure")
    assert answer.output_text == "Echo: answer azure"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert answer.usage.input_tokens_details.cached_tokens == 0
    assert sim.state.calls[-1]["model"] == "gpt-4o"
    events = list(sdk_responses.create(model=deployment, input="stream azure", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: stream azure"
    assert events[-1].response.usage.output_tokens == answer.usage.output_tokens
    assert sim.state.azure_calls[-1]["deployment"] == deployment


def test_responses_on_v1(v1_sdk: openai.OpenAI, sim: AzureSimulator) -> None:
    _check_responses(v1_sdk.responses, sim, "gpt-4o")
    assert sim.state.azure_calls[-1]["path"] == "/openai/v1/responses"


def test_responses_on_the_classic_layout(azure_server: ThreadedServer, sim: AzureSimulator) -> None:
    # AzureOpenAI posts responses to /openai/responses?api-version=…, deployment in the body.
    with openai.AzureOpenAI(
        azure_endpoint=azure_server.url,
        api_key=KEY,
        api_version="2025-04-01-preview",
        max_retries=0,
    ) as client:
        _check_responses(client.responses, sim, "gpt-4o")
    call = sim.state.azure_calls[-1]
    assert (call["path"], call["api_version"]) == ("/openai/responses", "2025-04-01-preview")


RESPONSE = {"model": "gpt-4o", "input": "hi"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "message"),
    [
        # v1 takes no dated version.
        (
            f"{V1_CHAT}?api-version={VERSION}",
            {**HELLO, "model": "gpt-4o"},
            None,
            400,
            "BadRequest",
            "API version",
        ),
        # The key as a bearer token is an Entra ID token there too.
        (V1_CHAT, {**HELLO, "model": "gpt-4o"}, {"Authorization": f"Bearer {KEY}"}, 401, "401", ""),
        # A deployment the resource does not have, named in the body.
        (V1_CHAT, {**HELLO, "model": "gpt-3.5-turbo"}, None, 404, "DeploymentNotFound", "The API"),
        # No model at all: there is no deployment to serve it.
        (V1_CHAT, HELLO, None, 400, "missing_required_parameter", "Missing required"),
        # An endpoint Azure does not serve.
        ("/openai/v1/moderations", {"input": "x", "model": "gpt-4o"}, None, 404, "404", ""),
        # The classic Responses API: a version is required, and one that has it.
        ("/openai/responses", RESPONSE, None, 404, "404", "Resource not found"),
        (f"/openai/responses?api-version={VERSION}", RESPONSE, None, 400, "BadRequest", "API"),
        (
            "/openai/responses?api-version=2025-01-01-preview",
            RESPONSE,
            None,
            400,
            "BadRequest",
            "API version",
        ),
        # ... and it is not served under a deployment.
        (
            "/openai/deployments/gpt-4o/responses?api-version=2025-04-01-preview",
            RESPONSE,
            None,
            404,
            "404",
            "",
        ),
    ],
)
def test_v1_and_responses_refusals(
    raw: httpx.Client,
    sim: AzureSimulator,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    status: int,
    code: str,
    message: str,
) -> None:
    resp = raw.post(path, json=body, headers=headers if headers is not None else {"api-key": KEY})
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(message)
    assert sim.state.calls == []


def test_v1_accepts_the_preview_opt_in(raw: httpx.Client, sim: AzureSimulator) -> None:
    for query in ("", "?api-version=preview"):
        resp = raw.post(f"/openai/v1/responses{query}", json=RESPONSE, headers={"api-key": KEY})
        assert resp.status_code == 200
        assert resp.json()["usage"]["input_tokens"] > 0
