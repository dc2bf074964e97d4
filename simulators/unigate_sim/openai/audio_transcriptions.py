"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``: multipart validation (in
the audio service's pydantic style) and a deterministic transcript.

The transcript is ``"Transcribed <N> bytes of <filename>"`` (``"Translated ..."`` for a
translation); a WAV upload's duration is read from its header, other uploads last as if
they were 16 kHz 16-bit mono.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import FormData, UploadFile

from unigate_sim.openai.audio_formats import upload_duration
from unigate_sim.openai.errors import OpenAIError, bad_request, invalid_value
from unigate_sim.openai.field_errors import FieldErrors
from unigate_sim.openai.models import resolve_model, served_of_kind
from unigate_sim.openai.tokens import count_tokens

FILE_FORMATS: Final = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
RESPONSE_FORMATS: Final = ("json", "text", "srt", "verbose_json", "vtt")
MAX_FILE_BYTES: Final = 25 * 1024 * 1024
_COMMON: Final = frozenset({"file", "model", "prompt", "response_format", "temperature"})
_TRANSCRIPTION_FIELDS: Final = _COMMON | {
    "language",
    "timestamp_granularities[]",
    "include[]",
    "chunking_strategy",
    "stream",
}
#: Models that transcribe into ``json`` or ``text`` only, and report usage in tokens.
_TOKEN_MODELS: Final = ("gpt-4o-mini-transcribe",)


@dataclass(frozen=True, slots=True)
class AudioRequest:
    """A validated transcription or translation request."""

    task: str  # "transcribe" or "translate"
    model: str
    filename: str
    size: int
    duration: float
    response_format: str
    language: str
    prompt: str
    temperature: float
    words: bool

    @property
    def text(self) -> str:
        verb = "Transcribed" if self.task == "transcribe" else "Translated"
        return f"{verb} {self.size} bytes of {self.filename}"


def _single(form: FormData, errors: FieldErrors, name: str) -> str | None:
    """A text field sent at most once (None when absent)."""
    values = form.getlist(name)
    if not values:
        return None
    first = values[0]
    if isinstance(first, UploadFile):
        errors.string(name, first.filename)
        return None
    return first


def _check_fields(form: FormData, task: str, errors: FieldErrors) -> UploadFile | None:
    allowed = _TRANSCRIPTION_FIELDS if task == "transcribe" else _COMMON
    for name, value in form.multi_items():
        if name not in allowed:
            errors.extra(name, value if isinstance(value, str) else value.filename)
    upload = form.get("file")
    if upload is None:
        errors.missing("file", None)
    elif not isinstance(upload, UploadFile):
        msg = "Value error, Expected UploadFile, received: <class 'str'>"
        errors.add("value_error", "file", msg, upload)
        upload = None
    if "model" not in form:
        errors.missing("model", None)
    for granularity in form.getlist("timestamp_granularities[]"):
        errors.enum("timestamp_granularities[]", granularity, ("word", "segment"))
    for included in form.getlist("include[]"):
        errors.enum("include[]", included, ("logprobs",))
    return upload


def _check_model(model: str, task: str, response_format: str, models: Sequence[str]) -> None:
    if resolve_model(model, models).kind != "transcription":
        raise invalid_value("model", model, served_of_kind(models, "transcription"))
    if task == "translate" and model in _TOKEN_MODELS:
        supported = [
            name for name in served_of_kind(models, "transcription") if name not in _TOKEN_MODELS
        ]
        raise invalid_value("model", model, supported)
    if model in _TOKEN_MODELS and response_format not in ("json", "text"):
        raise bad_request(
            f"response_format '{response_format}' is not compatible with model '{model}'. "
            "Use 'json' or 'text' instead.",
            "response_format",
            "unsupported_value",
        )


async def parse_audio_request(form: FormData, task: str, models: Sequence[str]) -> AudioRequest:
    """Validate a transcription (``task`` "transcribe") or translation ("translate") form."""
    errors = FieldErrors()
    upload = _check_fields(form, task, errors)
    model = _single(form, errors, "model")
    fmt = _single(form, errors, "response_format")
    response_format = errors.enum("response_format", fmt or "json", RESPONSE_FORMATS)
    temperature_field = _single(form, errors, "temperature")
    temperature = errors.number("temperature", temperature_field or "0", 0.0, 1.0)
    prompt = _single(form, errors, "prompt") or ""
    language = _single(form, errors, "language") or "en"
    stream = _single(form, errors, "stream")
    errors.raise_any()
    assert upload is not None and model is not None
    assert response_format is not None and temperature is not None
    _check_model(model, task, response_format, models)
    if stream is not None and stream.lower() == "true":
        raise bad_request("The simulator does not stream transcriptions.", "stream")
    filename = upload.filename or ""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in FILE_FORMATS:
        raise bad_request(f"Unrecognized file format. Supported formats: {list(FILE_FORMATS)}")
    data = await upload.read()
    if len(data) > MAX_FILE_BYTES:
        raise OpenAIError(
            413,
            f"Maximum content size limit ({MAX_FILE_BYTES}) exceeded ({len(data)} bytes read)",
        )
    return AudioRequest(
        task=task,
        model=model,
        filename=filename,
        size=len(data),
        duration=upload_duration(data),
        response_format=response_format,
        language=language if task == "transcribe" else "en",
        prompt=prompt,
        temperature=temperature,
        words="word" in form.getlist("timestamp_granularities[]"),
    )


def usage(request: AudioRequest) -> dict[str, object] | None:
    """What a json answer reports: tokens for gpt-4o models, seconds for a whisper
    transcription, nothing for a translation."""
    if request.model in _TOKEN_MODELS:
        prompt_tokens = count_tokens(request.prompt)
        audio_tokens = max(1, math.ceil(request.duration * 10))
        output_tokens = count_tokens(request.text)
        input_tokens = prompt_tokens + audio_tokens
        return {
            "type": "tokens",
            "input_tokens": input_tokens,
            "input_token_details": {"text_tokens": prompt_tokens, "audio_tokens": audio_tokens},
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
    if request.task == "transcribe":
        return {"type": "duration", "seconds": math.ceil(request.duration)}
    return None
