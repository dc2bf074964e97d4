"""The rest of the OpenAI surface through the gateway, with the SDK's own methods: legacy
completions, moderations, images, speech, transcriptions and translations (multipart),
rerank and the Responses API, each billed in the ledger."""

from __future__ import annotations

import io
import wave

import asyncpg
import openai
import pytest

from tests import admin_writes
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate_cli.devstack import Stack

MODELS = (
    "gpt-3.5-turbo-instruct,omni-moderation-latest,dall-e-3,gpt-image-1,tts-1,whisper-1,"
    "gpt-4o-mini-transcribe,rerank-english-v3.0,my-whisper"
)


@pytest.fixture(scope="module")
async def surface_channel(pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer) -> int:
    return await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name="surface",
        key=SIM_KEY,
        base_url=simulator.url,
        models=MODELS,
        model_mapping={"my-whisper": "whisper-1"},
    )


@pytest.fixture
def sdk(stack: Stack, tenant: Tenant, surface_channel: int) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )


async def only_row(pg: asyncpg.Pool, tenant: Tenant) -> asyncpg.Record:
    await wait_for_rows(pg, tenant.token_id, 1)
    row = await pg.fetchrow("SELECT * FROM logs WHERE token_id = $1", tenant.token_id)
    assert row is not None
    return row


def wav_bytes(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return out.getvalue()


async def test_legacy_completions_stream_and_not(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    done = await sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="say this")
    assert done.choices[0].text.startswith("Echo: say this")
    assert done.usage is not None
    stream = await sdk.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="stream this", stream=True
    )
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert text.startswith("Echo: stream this")
    await wait_for_rows(pg, tenant.token_id, 2)
    rows = await pg.fetch("SELECT * FROM logs WHERE token_id = $1 ORDER BY id", tenant.token_id)
    assert rows[0]["completion_tokens"] == done.usage.completion_tokens
    assert all(not r["estimated"] for r in rows)  # usage was asked of the provider


async def test_moderations_are_free(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    result = await sdk.moderations.create(input="I will kill the process")
    assert result.results[0].flagged
    row = await only_row(pg, tenant)
    assert (row["endpoint"], row["model_name"], row["quota"]) == (
        "moderations",
        "omni-moderation-latest",
        0,
    )


async def test_images(sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant) -> None:
    image = await sdk.images.generate(model="dall-e-3", prompt="a red square", n=1)
    assert image.data and (image.data[0].url or image.data[0].b64_json)
    row = await only_row(pg, tenant)
    assert (row["unit"], row["quantity"], row["estimated"]) == ("image", 1, False)
    assert row["quota"] == 20_000  # 0.04 USD


async def test_speech_download(sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant) -> None:
    text = "Hello from the gateway."
    speech = await sdk.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    )
    audio = speech.read()
    assert audio[:4] == b"RIFF" and speech.response.headers["content-type"] == "audio/wav"
    row = await only_row(pg, tenant)
    assert (row["unit"], row["quantity"]) == ("character", len(text))


async def test_transcription_and_translation_uploads(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant, simulator: ThreadedServer
) -> None:
    audio = wav_bytes()
    text = await sdk.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("hello.wav", audio, "audio/wav")
    )
    assert "hello.wav" in text.text
    # A channel that calls the model by another name gets the form rebuilt.
    translated = await sdk.audio.translations.create(
        model="my-whisper", file=("hola.wav", audio, "audio/wav")
    )
    assert "hola.wav" in translated.text
    sent = simulator.server.config.app.state.calls[-1]
    assert sent["model"] == "whisper-1"
    await wait_for_rows(pg, tenant.token_id, 2)


async def test_upload_without_file_is_a_400(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await sdk.post(
            "/audio/transcriptions",
            body={"model": "whisper-1"},
            cast_to=object,
            options={"headers": {"Content-Type": "multipart/form-data"}},
        )


async def test_rerank(sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant) -> None:
    result = await sdk.post(
        "/rerank",
        cast_to=object,
        body={
            "model": "rerank-english-v3.0",
            "query": "red apples",
            "documents": ["green pears", "red apples are sweet", "blue sky"],
            "top_n": 2,
        },
    )
    assert isinstance(result, dict)
    assert result["results"][0]["index"] == 1
    row = await only_row(pg, tenant)
    assert (row["unit"], row["quantity"], row["quota"]) == ("search_unit", 1, 1_000)


async def test_responses_stream_and_not(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    response = await sdk.responses.create(model="gpt-4o-mini", input="answer me")
    assert response.output_text.startswith("Echo: answer me")
    assert response.usage is not None
    events = [
        e.type
        async for e in await sdk.responses.create(
            model="gpt-4o-mini", input="stream me", stream=True
        )
    ]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    await wait_for_rows(pg, tenant.token_id, 2)
    rows = await pg.fetch("SELECT * FROM logs WHERE token_id = $1 ORDER BY id", tenant.token_id)
    assert rows[0]["prompt_tokens"] == response.usage.input_tokens
    assert rows[0]["completion_tokens"] == response.usage.output_tokens
    assert rows[1]["is_stream"] and not rows[1]["estimated"] and rows[1]["status_code"] == 200
