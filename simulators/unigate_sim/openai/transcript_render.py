"""A transcript in the ``response_format`` asked for: json, verbose_json, text, srt or vtt."""

from __future__ import annotations

from typing import Final

from unigate_sim.openai.audio_transcriptions import AudioRequest, usage
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import count_tokens

_LANGUAGES: Final[dict[str, str]] = {
    "en": "english",
    "de": "german",
    "es": "spanish",
    "fr": "french",
    "it": "italian",
    "ja": "japanese",
    "ko": "korean",
    "pt": "portuguese",
    "ru": "russian",
    "zh": "chinese",
}
#: Whisper's first text token, after which the segment's tokens are numbered.
_FIRST_TOKEN: Final = 50_364


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}"


def _segment(request: AudioRequest) -> JSONObject:
    return {
        "id": 0,
        "seek": 0,
        "start": 0.0,
        "end": request.duration,
        "text": " " + request.text,
        "tokens": list(range(_FIRST_TOKEN, _FIRST_TOKEN + count_tokens(request.text))),
        "temperature": request.temperature,
        "avg_logprob": -0.2,
        "compression_ratio": 1.0,
        "no_speech_prob": 0.0,
    }


def _words(request: AudioRequest) -> list[JSONObject]:
    """Each word of the transcript, the audio's duration shared evenly between them."""
    words = request.text.split()
    step = request.duration / len(words)
    return [
        {"word": word, "start": round(index * step, 2), "end": round((index + 1) * step, 2)}
        for index, word in enumerate(words)
    ]


def _verbose(request: AudioRequest) -> JSONObject:
    body: JSONObject = {
        "task": request.task,
        "language": _LANGUAGES.get(request.language, request.language),
        "duration": request.duration,
        "text": request.text,
        "segments": [_segment(request)],
    }
    if request.words:
        body["words"] = _words(request)
    reported = usage(request)
    if reported is not None:
        body["usage"] = reported
    return body


def render_transcript(request: AudioRequest) -> JSONObject | str:
    """A JSON object for json and verbose_json, else the text document to send as is."""
    if request.response_format == "verbose_json":
        return _verbose(request)
    if request.response_format == "json":
        body: JSONObject = {"text": request.text}
        reported = usage(request)
        if reported is not None:
            body["usage"] = reported
        return body
    if request.response_format == "srt":
        span = f"{_timestamp(0, ',')} --> {_timestamp(request.duration, ',')}"
        return f"1\n{span}\n{request.text}\n\n"
    if request.response_format == "vtt":
        span = f"{_timestamp(0, '.')} --> {_timestamp(request.duration, '.')}"
        return f"WEBVTT\n\n{span}\n{request.text}\n\n"
    return request.text + "\n"
