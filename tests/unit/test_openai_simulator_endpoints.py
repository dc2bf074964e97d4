"""The OpenAI simulator's other endpoints — legacy completions, moderations, images, speech,
transcriptions and translations, rerank and the Responses API — driven over a real socket
with the official openai SDK (and raw HTTP where the wire format is the point)."""

from __future__ import annotations

import base64
import io
import json
import struct
import wave
import zlib
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.unit.test_openai_simulator import ThreadedServer, error_of
from unigate.tokenizer.images import tiles_tokens
from unigate_sim.openai import Fault, count_prompt_tokens, count_tokens

INSTRUCT = "gpt-3.5-turbo-instruct"


def wav_bytes(frames: int, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * frames))
    return buffer.getvalue()


def sse_events(body: str) -> list[tuple[str | None, str]]:
    """``(event name or None, data)`` of each server-sent event."""
    assert body.endswith("\n\n")
    events: list[tuple[str | None, str]] = []
    for block in body[:-2].split("\n\n"):
        lines = block.split("\n")
        name = lines[0].removeprefix("event: ") if lines[0].startswith("event: ") else None
        assert lines[-1].startswith("data: ")
        events.append((name, lines[-1].removeprefix("data: ")))
    return events


# --------------------------------------------------------------------------- completions


def test_completion(client: openai.OpenAI, app: Starlette) -> None:
    resp = client.completions.create(model=INSTRUCT, prompt="Say hi", max_tokens=50)
    assert resp.object == "text_completion"
    assert resp.id.startswith("cmpl-") and resp.model == INSTRUCT
    [choice] = resp.choices
    assert (choice.text, choice.index, choice.finish_reason) == ("Echo: Say hi", 0, "stop")
    assert choice.logprobs is None
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 4)
    assert resp.usage.total_tokens == 6
    call = app.state.calls[-1]
    assert (call["path"], call["model"], call["status"]) == ("/v1/completions", INSTRUCT, 200)


def test_completion_defaults_to_16_tokens(client: openai.OpenAI) -> None:
    prompt = " ".join(f"w{i}" for i in range(30))
    resp = client.completions.create(model=INSTRUCT, prompt=prompt)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 16
    assert count_tokens(resp.choices[0].text) == 16


def test_completion_prompts_n_echo_stop_logprobs(client: openai.OpenAI) -> None:
    resp = client.completions.create(
        model=INSTRUCT, prompt=["one", "two: three"], n=2, echo=True, stop=[":"], logprobs=2
    )
    texts = [(c.index, c.text) for c in resp.choices]
    assert texts == [(0, "oneEcho"), (1, "oneEcho"), (2, "two: threeEcho"), (3, "two: threeEcho")]
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_tokens("one") + count_tokens("two: three")
    assert resp.usage.completion_tokens == 4 * count_tokens("Echo")
    logprobs = resp.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert "".join(logprobs.tokens) == "oneEcho"
    assert logprobs.top_logprobs is not None and len(logprobs.top_logprobs[0]) == 2


def test_completion_of_token_arrays(client: openai.OpenAI) -> None:
    resp = client.completions.create(model=INSTRUCT, prompt=[[1, 2, 3], [4]], max_tokens=20)
    assert [c.text for c in resp.choices] == ["Echo: 1 2 3", "Echo: 4"]
    assert resp.usage is not None and resp.usage.prompt_tokens == 4


def test_completion_stream_with_usage(client: openai.OpenAI, http: httpx.Client) -> None:
    chunks = list(
        client.completions.create(
            model=INSTRUCT,
            prompt="stream me",
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.object == "text_completion" for chunk in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "Echo: stream me"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 4)
    assert len({c.id for c in chunks}) == 1

    body = {"model": INSTRUCT, "prompt": "x", "stream": True}
    wire = http.post("/v1/completions", json=body)
    assert wire.headers["content-type"].startswith("text/event-stream")
    events = sse_events(wire.text)
    assert events[-1] == (None, "[DONE]")
    first = json.loads(events[0][1])
    assert "usage" not in first and first["choices"][0]["text"] == "Echo"


def test_completion_refuses_chat_models_and_vice_versa(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="gpt-4o-mini", prompt="x")
    assert error_of(info.value)["message"].startswith("This is a chat model and not supported")
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model=INSTRUCT, messages=[{"role": "user", "content": "x"}])
    assert error_of(info.value)["message"].startswith("This is not a chat model")


def test_completion_context_is_checked(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=INSTRUCT, prompt="x", max_tokens=4096)
    error = error_of(info.value)
    assert error["code"] == "context_length_exceeded"
    assert (
        "you requested 4097 tokens (1 in your prompt; 4096 for the completion)"
        in (error["message"])
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": INSTRUCT}, "prompt", "missing_required_parameter"),
        ({"model": INSTRUCT, "prompt": {"text": "x"}}, None, None),
        ({"model": INSTRUCT, "prompt": [1, "x"]}, None, None),
        ({"model": INSTRUCT, "prompt": "x", "max_tokens": -1}, "max_tokens", None),
        ({"model": INSTRUCT, "prompt": "x", "logprobs": 6}, "logprobs", None),
        ({"model": INSTRUCT, "prompt": "x", "echo": "yes"}, "echo", "invalid_type"),
        ({"model": INSTRUCT, "prompt": "x", "stream_options": {}}, "stream_options", None),
        ({"model": INSTRUCT, "prompt": "x", "messages": []}, None, None),
    ],
)
def test_invalid_completion_requests(
    http: httpx.Client, body: dict[str, Any], param: str | None, code: str | None
) -> None:
    resp = http.post("/v1/completions", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_completion_unrecognized_argument(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=INSTRUCT, prompt="x", extra_body={"messages": []})
    assert error_of(info.value)["message"] == "Unrecognized request argument supplied: messages"


# --------------------------------------------------------------------------- moderations


def test_moderation_flags_kill(client: openai.OpenAI, app: Starlette) -> None:
    resp = client.moderations.create(input=["I will kill the process", "hello"])
    assert resp.model == "omni-moderation-latest" and resp.id.startswith("modr-")
    flagged, clean = resp.results
    assert flagged.flagged and flagged.categories.violence
    assert flagged.category_scores.violence > 0.9
    assert not clean.flagged and not any(clean.categories.model_dump().values())
    assert max(clean.category_scores.model_dump().values()) < 0.001
    raw = flagged.model_dump(by_alias=True)
    expected = {
        "harassment",
        "harassment/threatening",
        "hate",
        "hate/threatening",
        "illicit",
        "illicit/violent",
        "self-harm",
        "self-harm/intent",
        "self-harm/instructions",
        "sexual",
        "sexual/minors",
        "violence",
        "violence/graphic",
    }
    for key in ("categories", "category_scores", "category_applied_input_types"):
        assert set(raw[key]) == expected
    assert raw["category_applied_input_types"]["violence"] == ["text"]
    assert app.state.calls[-1]["model"] is None  # the default model was not named
    again = client.moderations.create(input="I will kill the process")
    assert again.results[0].category_scores == flagged.category_scores


def test_moderation_of_text_and_image(client: openai.OpenAI) -> None:
    resp = client.moderations.create(
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "kill it"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
    )
    [result] = resp.results
    assert result.flagged
    applied = result.category_applied_input_types.model_dump(by_alias=True)
    assert applied["violence"] == ["text", "image"] and applied["hate"] == ["text"]


def test_text_moderation_model_refuses_images(client: openai.OpenAI) -> None:
    assert (
        not client.moderations.create(model="text-moderation-latest", input="hi").results[0].flagged
    )
    with pytest.raises(openai.BadRequestError):
        client.moderations.create(
            model="text-moderation-latest",
            input=[{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        )


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "input"),
        ({"input": []}, 400, None),
        ({"input": [1]}, 400, None),
        ({"input": [{"type": "video"}]}, 400, "input[0].type"),
        ({"input": "x", "model": "gpt-4o-mini"}, 400, "model"),
        ({"input": "x", "model": "omni-moderation-9"}, 404, None),
        ({"input": "x", "extra": 1}, 400, None),
    ],
)
def test_invalid_moderation_requests(
    http: httpx.Client, body: dict[str, Any], status: int, param: str | None
) -> None:
    resp = http.post("/v1/moderations", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


# --------------------------------------------------------------------------- images


def png_pixel(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and decompressed data of a PNG, checking its chunks' CRCs."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    position, chunks = 8, {}
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        tag = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(tag + data)
        chunks[tag] = data
        position += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert b"IEND" in chunks
    return width, height, zlib.decompress(chunks[b"IDAT"])


def test_image_urls(client: openai.OpenAI, server: ThreadedServer, app: Starlette) -> None:
    resp = client.images.generate(prompt="a red fox", n=2, size="256x256")
    assert resp.data is not None and len(resp.data) == 2
    urls = [image.url for image in resp.data]
    assert all(url and url.startswith(server.url + "/images/") for url in urls)
    assert urls[0] != urls[1]
    assert resp.usage is None and resp.data[0].revised_prompt is None
    assert urls == [i.url for i in (client.images.generate(prompt="a red fox", n=2).data or [])]
    assert app.state.calls[-1]["path"] == "/v1/images/generations"
    fetched = httpx.get(str(urls[0]))  # no API key: signed-URL style
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert png_pixel(fetched.content)[:2] == (1, 1)
    assert httpx.get(server.url + "/images/nothing.png").status_code == 404


def test_image_b64_with_revised_prompt(client: openai.OpenAI) -> None:
    resp = client.images.generate(
        model="dall-e-3",
        prompt="a lighthouse",
        size="1792x1024",
        quality="hd",
        style="natural",
        response_format="b64_json",
    )
    assert resp.data is not None
    [image] = resp.data
    assert image.url is None and image.revised_prompt == "A simulated rendering of: a lighthouse"
    assert image.b64_json is not None
    width, height, raw = png_pixel(base64.b64decode(image.b64_json))
    assert (width, height, len(raw)) == (1, 1, 4)


def test_gpt_image_reports_usage(client: openai.OpenAI) -> None:
    resp = client.images.generate(model="gpt-image-1", prompt="a tiny cat", quality="low")
    assert resp.data is not None and resp.data[0].b64_json is not None
    png_pixel(base64.b64decode(resp.data[0].b64_json))
    assert (resp.size, resp.quality, resp.output_format) == ("1024x1024", "low", "png")
    assert resp.usage is not None
    assert resp.usage.input_tokens == count_tokens("a tiny cat") == 3
    assert resp.usage.input_tokens_details.text_tokens == 3
    assert (resp.usage.output_tokens, resp.usage.total_tokens) == (272, 275)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"size": "2048x2048"}, "Invalid value: '2048x2048'. Supported values are: "),
        ({"model": "dall-e-3", "n": 2}, "You must provide n=1 for this model."),
        (
            {"model": "gpt-image-1", "response_format": "url"},
            "Unknown parameter: 'response_format'.",
        ),
        ({"model": "gpt-4o-mini"}, "Invalid value: 'gpt-4o-mini'."),
        ({"prompt": "x" * 1001}, "Invalid 'prompt': string too long."),
    ],
)
def test_invalid_image_requests(
    client: openai.OpenAI, arguments: dict[str, Any], message: str
) -> None:
    arguments = {"prompt": "x", **arguments}
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(**arguments)
    assert error_of(info.value)["message"].startswith(message)


# --------------------------------------------------------------------------- speech


def test_speech_wav(client: openai.OpenAI, app: Starlette) -> None:
    resp = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello world", response_format="wav"
    )
    assert resp.response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(resp.content), "rb") as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 24000)
        # 0.05 s per token: "Hello world" is two tokens.
        assert audio.getnframes() == 2400
    again = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello world", response_format="wav"
    )
    assert again.content == resp.content
    assert app.state.calls[-1]["model"] == "tts-1"
    assert app.state.stream_endings[-1].how == "complete"


def test_speech_mp3_streams_in_chunks(client: openai.OpenAI) -> None:
    text = "a fairly long sentence " * 20
    with client.audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice="nova", input=text, speed=0.5
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers.get("transfer-encoding") == "chunked"
        chunks = list(response.iter_bytes())
    audio = b"".join(chunks)
    assert audio.startswith(b"ID3\x04")
    tag_size = 10 + sum(byte << (7 * (3 - i)) for i, byte in enumerate(audio[6:10]))
    assert audio[tag_size : tag_size + 2] == b"\xff\xf3"  # an MPEG-2 layer III frame
    whole = client.audio.speech.create(model="tts-1-hd", voice="nova", input=text, speed=0.5)
    assert whole.content == audio


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [
        ("pcm", "audio/pcm", b""),
        ("flac", "audio/flac", b"fLaC"),
        ("opus", "audio/opus", b"OggS"),
        ("aac", "audio/aac", b"\xff\xf1"),
    ],
)
def test_speech_formats(client: openai.OpenAI, fmt: Any, content_type: str, magic: bytes) -> None:
    resp = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input="hi", response_format=fmt
    )
    assert resp.response.headers["content-type"] == content_type
    assert resp.content.startswith(magic)


def test_speech_sse(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini-tts", "voice": "ash", "input": "hi there", "stream_format": "sse"}
    resp = http.post("/v1/audio/speech", json={**body, "response_format": "pcm"})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(data) for _, data in sse_events(resp.text)]
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) == 2 * 2400
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    assert done["usage"]["input_tokens"] == 2
    with_tts_1 = http.post("/v1/audio/speech", json={**body, "model": "tts-1"})
    assert with_tts_1.status_code == 400
    assert with_tts_1.json()["error"]["param"] == "stream_format"


def test_invalid_speech_requests(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="tts-1", voice="bella", input="x", speed=5)
    error = error_of(info.value)
    assert error["message"] == (
        "[{'type': 'enum', 'loc': ('body', 'voice'), 'msg': \"Input should be 'alloy', 'ash', "
        "'ballad', 'coral', 'echo', 'fable', 'onyx', 'nova', 'sage', 'shimmer', 'verse', "
        "'marin' or 'cedar'\", 'input': 'bella'}, {'type': 'less_than_equal', 'loc': ('body', "
        "'speed'), 'msg': 'Input should be less than or equal to 4', 'input': 5, 'ctx': {'le': "
        "4.0}}]"
    )
    assert (error["param"], error["code"]) == (None, None)
    resp = http.post(
        "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "x" * 4097}
    )
    assert resp.json()["error"]["message"] == (
        "[{'type': 'string_too_long', 'loc': ('body', 'input'), 'msg': 'String should have at "
        "most 4096 characters', 'ctx': {'max_length': 4096}}]"
    )
    resp = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "x", "pitch": 2})
    message = resp.json()["error"]["message"]
    assert "'type': 'missing', 'loc': ('body', 'voice')" in message
    assert "'type': 'extra_forbidden', 'loc': ('body', 'pitch')" in message
    resp = http.post(
        "/v1/audio/speech", json={"model": "whisper-1", "voice": "alloy", "input": "x"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "model"


# --------------------------------------------------------------------------- transcriptions


def test_transcription_json(client: openai.OpenAI, app: Starlette) -> None:
    audio = wav_bytes(24_000)  # 1.5 s at 16 kHz
    resp = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio))
    assert resp.text == f"Transcribed {len(audio)} bytes of speech.wav"
    assert resp.usage is not None and resp.usage.type == "duration"
    assert resp.usage.seconds == 2
    call = app.state.calls[-1]
    assert (call["path"], call["model"], call["status"]) == (
        "/v1/audio/transcriptions",
        "whisper-1",
        200,
    )
    uploaded = call["body"]["file"]
    assert (uploaded["filename"], uploaded["size"]) == ("speech.wav", len(audio))


def test_gpt4o_transcription_reports_tokens(client: openai.OpenAI) -> None:
    resp = client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("memo.mp3", b"\xff\xf3" * 50), prompt="A memo."
    )
    assert resp.text == "Transcribed 100 bytes of memo.mp3"
    usage = resp.usage
    assert usage is not None and usage.type == "tokens"
    assert usage.input_token_details is not None
    assert usage.input_token_details.text_tokens == count_tokens("A memo.") == 3
    assert usage.output_tokens == count_tokens(resp.text)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_transcription_text_srt_vtt(client: openai.OpenAI) -> None:
    audio = wav_bytes(16_000)
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", audio), response_format="text"
    )
    assert text == f"Transcribed {len(audio)} bytes of a.wav\n"
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", audio), response_format="srt"
    )
    assert srt == f"1\n00:00:00,000 --> 00:00:01,000\nTranscribed {len(audio)} bytes of a.wav\n\n"
    vtt = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", audio), response_format="vtt"
    )
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n")


def test_transcription_verbose_json(client: openai.OpenAI) -> None:
    audio = wav_bytes(8_000)
    resp = client.audio.transcriptions.create(
        model="whisper-1",
        file=("clip.wav", audio),
        response_format="verbose_json",
        language="fr",
        temperature=0.2,
        timestamp_granularities=["word", "segment"],
    )
    assert (resp.language, resp.duration) == ("french", 0.5)
    assert resp.segments is not None
    [segment] = resp.segments
    assert (segment.start, segment.end, segment.temperature) == (0.0, 0.5, 0.2)
    assert resp.words is not None and [w.word for w in resp.words] == resp.text.split()
    assert resp.words[-1].end == 0.5


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation(client: openai.OpenAI, app: Starlette) -> None:
    resp = client.audio.translations.create(model="whisper-1", file=("clip.ogg", b"OggS..."))
    assert resp.text == "Translated 7 bytes of clip.ogg"
    assert app.state.calls[-1]["path"] == "/v1/audio/translations"
    verbose = client.audio.translations.create(
        model="whisper-1", file=("clip.ogg", b"OggS..."), response_format="verbose_json"
    )
    assert verbose.language == "english"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_invalid_transcriptions(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"hello"))
    assert error_of(info.value)["message"] == (
        "Unrecognized file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', "
        "'mpga', 'oga', 'ogg', 'wav', 'webm']"
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(
            model="gpt-4o-mini-transcribe", file=("a.wav", wav_bytes(10))
        )
    assert error_of(info.value)["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=("a.wav", b"x"), response_format="verbose_json"
        )
    assert error_of(info.value) == {
        "message": "response_format 'verbose_json' is not compatible with model "
        "'gpt-4o-mini-transcribe'. Use 'json' or 'text' instead.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "unsupported_value",
    }
    resp = http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"x": b""})
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert (
        "{'type': 'missing', 'loc': ('body', 'file'), 'msg': 'Field required', 'input': None}"
        in (message)
    )
    assert "'type': 'extra_forbidden', 'loc': ('body', 'x')" in message
    resp = http.post(
        "/v1/audio/translations",
        data={"model": "whisper-1", "language": "de", "temperature": "hot"},
        files={"file": ("a.wav", b"x")},
    )
    message = resp.json()["error"]["message"]
    assert "'type': 'float_parsing', 'loc': ('body', 'temperature')" in message
    assert "'type': 'extra_forbidden', 'loc': ('body', 'language')" in message
    json_body = http.post("/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert json_body.status_code == 400
    assert "('body', 'file')" in json_body.json()["error"]["message"]


# --------------------------------------------------------------------------- rerank


def test_rerank(client: openai.OpenAI, app: Starlette) -> None:
    resp: Any = client.post(
        "/rerank",
        cast_to=object,
        body={
            "model": "rerank-english-v3.0",
            "query": "capital of France",
            "documents": [
                "Berlin is the capital of Germany",
                {"text": "Paris is the capital of France"},
                "Bananas are yellow",
            ],
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert [r["index"] for r in resp["results"]] == [1, 0]
    assert [r["relevance_score"] for r in resp["results"]] == [1.0, pytest.approx(2 / 3)]
    assert resp["results"][0]["document"] == {"text": "Paris is the capital of France"}
    assert resp["meta"]["billed_units"] == {"search_units": 1}
    query_tokens = count_tokens("capital of France")
    assert resp["usage"]["total_tokens"] == sum(
        query_tokens + count_tokens(d)
        for d in [
            "Berlin is the capital of Germany",
            "Paris is the capital of France",
            "Bananas are yellow",
        ]
    )
    assert app.state.calls[-1]["model"] == "rerank-english-v3.0"
    plain: Any = client.post(
        "/rerank",
        cast_to=object,
        body={"model": "rerank-english-v3.0", "query": "yellow", "documents": ["a", "yellow"]},
    )
    assert plain["results"] == [
        {"index": 1, "relevance_score": 1.0},
        {"index": 0, "relevance_score": 0.0},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "documents": []}, "documents"),
        ({"query": "q"}, "documents"),
        ({"documents": ["a"]}, "query"),
        ({"query": "q", "documents": [{"body": "a"}]}, "documents[0].body"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ],
)
def test_invalid_rerank_requests(
    client: openai.OpenAI, body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/rerank", cast_to=object, body={"model": "rerank-english-v3.0", **body})
    assert error_of(info.value)["param"] == param


# --------------------------------------------------------------------------- responses


def test_response(client: openai.OpenAI, app: Starlette) -> None:
    resp = client.responses.create(model="gpt-4o-mini", input="Hello there")
    assert (resp.object, resp.status, resp.model) == ("response", "completed", "gpt-4o-mini")
    assert resp.id.startswith("resp_") and resp.output_text == "Echo: Hello there"
    [message] = resp.output
    assert message.type == "message" and message.role == "assistant"
    assert message.status == "completed"
    [part] = message.content
    assert part.type == "output_text" and part.annotations == []
    usage = resp.usage
    assert usage is not None
    assert usage.input_tokens == count_prompt_tokens([{"role": "user", "content": "Hello there"}])
    assert usage.output_tokens == count_tokens("Echo: Hello there") == 4
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert app.state.calls[-1]["path"] == "/v1/responses"


def test_response_of_input_items(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model="gpt-4o",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                    {"type": "input_text", "text": "this?"},
                ],
            },
        ],
        temperature=0.5,
        metadata={"k": "v"},
    )
    assert resp.output_text == "Echo: what is this?"
    assert resp.instructions == "Be brief." and resp.temperature == 0.5
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}]},
    ]
    assert resp.usage is not None
    # A remote image of unknown size is costed as 1024x1024 at high detail.
    assert resp.usage.input_tokens == count_prompt_tokens(messages) + tiles_tokens(1024, 1024)


def test_response_truncated_by_max_output_tokens(client: openai.OpenAI) -> None:
    resp = client.responses.create(
        model="gpt-4o-mini", input=" ".join(["word"] * 40), max_output_tokens=16
    )
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 16


def test_response_stream(client: openai.OpenAI, http: httpx.Client) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="Hi you", stream=True))
    types = [event.type for event in events]
    deltas = types.count("response.output_text.delta")
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: Hi you"
    first, last = events[0], events[-1]
    assert first.type == "response.created" and first.response.status == "in_progress"
    assert last.type == "response.completed" and last.response.output_text == text
    assert last.response.usage is not None and last.response.usage.output_tokens == 4

    wire = http.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "x", "stream": True})
    frames = sse_events(wire.text)
    assert all(name == json.loads(data)["type"] for name, data in frames)
    assert frames[-1][0] == "response.completed"
    assert "[DONE]" not in wire.text


@pytest.mark.parametrize(
    ("arguments", "param", "code"),
    [
        ({"extra_body": {"messages": []}}, "messages", "unknown_parameter"),
        ({"model": "gpt-9"}, "model", "model_not_found"),
        ({"max_output_tokens": 8}, "max_output_tokens", "integer_below_min_value"),
        ({"input": [{"role": "bot", "content": "x"}]}, "input[0].role", "invalid_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "input[0].content[0].type",
            "invalid_value",
        ),
        ({"temperature": 3}, "temperature", "decimal_above_max_value"),
    ],
)
def test_invalid_responses_requests(
    client: openai.OpenAI, arguments: dict[str, Any], param: str, code: str
) -> None:
    arguments = {"model": "gpt-4o-mini", "input": "x", **arguments}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**arguments)
    error = error_of(info.value)
    assert (error["param"], error["code"]) == (param, code)


def test_responses_unknown_parameter_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o-mini", input="x", extra_body={"foo": 1})
    assert error_of(info.value)["message"] == "Unknown parameter: 'foo'."


# --------------------------------------------------------------------------- shared wrapper

ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/completions", {"json": {"model": INSTRUCT, "prompt": "x"}}),
    ("/v1/moderations", {"json": {"input": "x"}}),
    ("/v1/images/generations", {"json": {"model": "dall-e-2", "prompt": "x"}}),
    ("/v1/audio/speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "x"}}),
    (
        "/v1/audio/transcriptions",
        {"data": {"model": "whisper-1"}, "files": {"file": ("a.wav", b"x")}},
    ),
    (
        "/v1/audio/translations",
        {"data": {"model": "whisper-1"}, "files": {"file": ("a.mp3", b"x")}},
    ),
    (
        "/v1/rerank",
        {"json": {"model": "rerank-english-v3.0", "query": "q", "documents": ["d"]}},
    ),
    ("/v1/responses", {"json": {"model": "gpt-4o-mini", "input": "x"}}),
]


@pytest.mark.parametrize(("path", "request_args"), ENDPOINTS)
def test_endpoints_share_auth_recording_and_faults(
    server: ThreadedServer,
    http: httpx.Client,
    app: Starlette,
    path: str,
    request_args: dict[str, Any],
) -> None:
    refused = httpx.post(
        server.url + path, headers={"Authorization": "Bearer sk-wrong"}, **request_args
    )
    assert refused.status_code == 401 and app.state.calls == []
    failure = {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
    app.state.fail_next.append((503, failure))
    assert http.post(path, **request_args).status_code == 503
    app.state.faults.append(Fault(status=429, body=failure, headers={"retry-after": "1"}))
    limited = http.post(path, **request_args)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1")
    assert http.post(path, **request_args).status_code == 200
    assert [(c["path"], c["status"]) for c in app.state.calls] == [
        (path, 503),
        (path, 429),
        (path, 200),
    ]
    assert all(c["model"] for c in app.state.calls) or path == "/v1/moderations"
    assert app.state.fail_next == [] and app.state.faults == []


def test_speech_stream_can_be_cut(http: httpx.Client, app: Starlette) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "word " * 200, "response_format": "wav"}
    whole = http.post("/v1/audio/speech", json=body).content
    app.state.faults.append(Fault(cut_after=1))
    cut = http.post("/v1/audio/speech", json=body).content
    assert len(whole) > 4096 and cut == whole[:4096]
    assert [ending.how for ending in app.state.stream_endings] == ["complete", "cut"]
