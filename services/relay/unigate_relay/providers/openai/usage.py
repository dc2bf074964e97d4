"""Exact usage from OpenAI-protocol answers, per endpoint, and estimates where the provider
reports none (rows counted this way are marked estimated in the ledger)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import orjson

from unigate import unit_prices
from unigate.audio_duration import audio_seconds, billed_seconds
from unigate.tokens import counted_usage
from unigate.v1 import common_pb2
from unigate_relay.providers.json_values import count
from unigate_relay.providers.openai.multipart import uploaded_file

_AUDIO_UPLOADS = ("audio.transcriptions", "audio.translations")


def usage_object(raw: Any) -> common_pb2.Usage | None:
    """OpenAI's usage in either naming: chat (prompt/completion) or Responses/images
    (input/output tokens); a whisper-1 transcription's ``{"type": "duration", "seconds": N}``
    is N seconds of audio."""
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == "duration":
        seconds = raw.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return None
        # OpenAI reports whole seconds; a fraction is billed as the next whole second.
        return common_pb2.Usage(
            unit=unit_prices.SECOND, quantity=billed_seconds(Fraction(repr(seconds)))
        )
    prompt = count(raw.get("prompt_tokens")) or count(raw.get("input_tokens"))
    completion = count(raw.get("completion_tokens")) or count(raw.get("output_tokens"))
    details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    # DeepSeek reports its context-cache hits as prompt_cache_hit_tokens, Moonshot as a
    # top-level cached_tokens.
    cached = cached or count(raw.get("prompt_cache_hit_tokens")) or count(raw.get("cached_tokens"))
    if not prompt and not completion and count(raw.get("total_tokens")):
        prompt = count(raw.get("total_tokens"))  # rerank and embeddings report only a total
    # gpt-4o-transcribe: the audio part of the input, priced above text input.
    audio_details = raw.get("input_token_details") or details
    audio = count(audio_details.get("audio_tokens")) if isinstance(audio_details, dict) else 0
    return common_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count(raw.get("total_tokens")) or prompt + completion,
        cached_tokens=cached,
        audio_tokens=min(audio, prompt),
    )


def _request_json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _answer_text(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("text"), str):  # transcriptions
        return str(data["text"])
    text = []
    for choice in data.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            text.append(str(message.get("content") or choice.get("text") or ""))
    for item in data.get("output") or []:  # Responses
        for part in (item.get("content") or []) if isinstance(item, dict) else []:
            if isinstance(part, dict):
                text.append(str(part.get("text") or ""))
    return "".join(text)


def _search_units(data: Any) -> int:
    """Cohere's billed search units (``meta.billed_units.search_units``) of a rerank answer."""
    billed = _at(data, ("meta", "billed_units", "search_units"))
    return count(billed)


def _uploaded_seconds(request_body: bytes, request_content_type: str) -> common_pb2.Usage:
    """The seconds of the uploaded audio, for a provider that did not say what it billed:
    read from the file (never from its size), and marked estimated since it is our count."""
    data = uploaded_file(request_body, request_content_type) if request_content_type else None
    seconds = audio_seconds(data) if data is not None else None
    return common_pb2.Usage(
        unit=unit_prices.SECOND,
        quantity=billed_seconds(seconds) if seconds is not None else 0,
        estimated=True,
    )


def usage_from_answer(
    endpoint: str,
    request_body: bytes,
    content_type: str,
    answer: bytes,
    model: str = "",
    *,
    request_content_type: str = "",
    reported: bool = True,
) -> common_pb2.Usage:
    """Usage of a non-streamed answer in the provider's own units: its reported figures
    when it gives them (tokens, seconds, search units), else what it bills by (characters of
    speech input, images delivered, seconds of the uploaded audio), else tokens counted with
    ``model``'s encoding. With ``reported`` false the provider's ``usage`` is no count
    (FastGPT's placeholder) and is not read."""
    if endpoint == "audio.speech":
        # Speech is priced per input character, which we know exactly.
        chars = len(str(_request_json(request_body).get("input") or ""))
        return common_pb2.Usage(unit=unit_prices.CHARACTER, quantity=chars)
    data: Any = None
    if "json" in content_type:
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            data = None
    exact = usage_object(data.get("usage")) if isinstance(data, dict) and reported else None
    if endpoint == "rerank" and (units := _search_units(data)):
        # Cohere bills search units; the price table says whether this model is priced so.
        found = exact or common_pb2.Usage()
        found.unit, found.quantity = unit_prices.SEARCH_UNIT, units
        return found
    if exact is not None:
        return exact
    if endpoint == "images.generations":
        images = data.get("data") if isinstance(data, dict) else None
        if isinstance(images, list):
            n = len(images)  # what was delivered
        else:
            n = count(_request_json(request_body).get("n")) or 1
        return common_pb2.Usage(unit=unit_prices.IMAGE, quantity=n)
    if endpoint in _AUDIO_UPLOADS:
        return _uploaded_seconds(request_body, request_content_type)
    text = _answer_text(data) if data is not None else answer.decode(errors="replace")
    return counted_usage(endpoint, request_body, model, text)


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(value, list) and key.isdigit():
            # A list index (Moonshot: "choices", "0", "usage").
            value = value[int(key)] if int(key) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def usage_from_stream_event(
    data: bytes, path: tuple[str, ...] | None = None
) -> tuple[common_pb2.Usage, bool] | None:
    """Usage carried by one stream payload, and whether the event is usage-only (a chat
    usage chunk with no choices, which clients that did not ask for it must not see).

    ``path`` names where a provider puts usage besides the top-level ``usage`` (Groq:
    ``("x_groq", "usage")``); the top-level one wins when both are present."""
    if b'"usage":' not in data:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    response = parsed.get("response")
    if isinstance(response, dict) and parsed.get("type") == "response.completed":
        found = usage_object(response.get("usage"))
        return (found, False) if found is not None else None
    found = usage_object(parsed.get("usage"))
    if found is None and path:
        found = usage_object(_at(parsed, path))
    if found is None:
        return None
    return found, "choices" in parsed and not parsed.get("choices")
