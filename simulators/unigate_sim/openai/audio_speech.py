"""``POST /v1/audio/speech``: validation (in the audio service's pydantic style) and the
simulated speech, streamed in chunks as raw audio or as ``speech.audio.*`` events."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.audio_formats import SAMPLE_RATE, speech_audio, speech_samples
from unigate_sim.openai.errors import bad_request, invalid_value
from unigate_sim.openai.field_errors import FieldErrors
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import resolve_model, served_of_kind
from unigate_sim.openai.sse import data_frame
from unigate_sim.openai.tokens import count_tokens

VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
FORMATS: Final = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MAX_INPUT_CHARS: Final = 4096
#: Bytes per chunk of a streamed answer.
CHUNK_BYTES: Final = 4096
_FIELDS: Final = (
    "model",
    "input",
    "voice",
    "instructions",
    "response_format",
    "speed",
    "stream_format",
)
# Models that cannot stream server-sent events (they only stream raw audio).
_NO_SSE: Final = ("tts-1", "tts-1-hd")


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    model: str
    input: str
    voice: str
    response_format: str
    speed: float
    sse: bool
    input_tokens: int

    @property
    def samples(self) -> int:
        return speech_samples(count_tokens(self.input), self.speed)


def _voice(errors: FieldErrors, value: Any) -> str | None:
    """A built-in voice's name, or a custom voice's id (``{"id": "voice_..."}``)."""
    if isinstance(value, dict) and set(value) == {"id"} and isinstance(value["id"], str):
        return value["id"]
    return errors.enum("voice", value, VOICES)


def parse_speech_request(payload: JSONObject, models: Sequence[str]) -> SpeechRequest:
    """Validate a ``POST /v1/audio/speech`` body: every field error at once, then the model."""
    errors = FieldErrors()
    for name in ("model", "input", "voice"):
        if name not in payload:
            errors.missing(name, payload)
    model = errors.string("model", payload["model"]) if "model" in payload else None
    text = errors.string("input", payload["input"]) if "input" in payload else None
    if text is not None and len(text) > MAX_INPUT_CHARS:
        errors.add(
            "string_too_long",
            "input",
            f"String should have at most {MAX_INPUT_CHARS} characters",
            ctx={"max_length": MAX_INPUT_CHARS},
        )
    voice = _voice(errors, payload["voice"]) if "voice" in payload else None
    if payload.get("instructions") is not None:
        errors.string("instructions", payload["instructions"])
    fmt = payload.get("response_format", "mp3")
    response_format = errors.enum("response_format", fmt, FORMATS)
    speed = errors.number("speed", payload.get("speed", 1.0), 0.25, 4.0)
    stream_format = errors.enum(
        "stream_format", payload.get("stream_format", "audio"), ("sse", "audio")
    )
    for name, value in payload.items():
        if name not in _FIELDS:
            errors.extra(name, value)
    errors.raise_any()
    assert model is not None and text is not None and voice is not None
    assert response_format is not None and speed is not None
    if resolve_model(model, models).kind != "speech":
        raise invalid_value("model", model, served_of_kind(models, "speech"))
    sse = stream_format == "sse"
    if sse and model in _NO_SSE:
        raise bad_request(
            f"stream_format 'sse' is not supported for model '{model}'.", "stream_format"
        )
    instructions = payload.get("instructions") or ""
    tokens = count_tokens(text) + count_tokens(instructions)
    return SpeechRequest(model, text, voice, response_format, speed, sse, tokens)


def speech_bytes(request: SpeechRequest) -> bytes:
    """The whole simulated audio of a request."""
    key = f"{request.model}\x00{request.voice}\x00{request.input}"
    return speech_audio(key, request.samples, request.response_format)


def speech_chunks(request: SpeechRequest) -> list[bytes]:
    """The audio as the chunks of a streamed answer."""
    audio = speech_bytes(request)
    return [audio[start : start + CHUNK_BYTES] for start in range(0, len(audio), CHUNK_BYTES)]


def speech_events(request: SpeechRequest) -> list[bytes]:
    """``stream_format`` "sse": base64 audio deltas, then ``speech.audio.done`` with usage
    (one output token per 50 ms of audio)."""
    frames = [
        data_frame({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()})
        for chunk in speech_chunks(request)
    ]
    output_tokens = max(1, request.samples * 20 // SAMPLE_RATE)
    usage = {
        "input_tokens": request.input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": request.input_tokens + output_tokens,
    }
    frames.append(data_frame({"type": "speech.audio.done", "usage": usage}))
    return frames
