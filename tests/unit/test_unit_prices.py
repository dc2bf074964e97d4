"""Units other than tokens: the price table, exact quota, the relay's usage in the provider's
units, audio durations read from real files, and repeated multipart fields."""

from __future__ import annotations

import math
from fractions import Fraction

import orjson
import pytest

from tests.audio_files import FORMATS, encoded_file
from unigate.audio_duration import audio_seconds
from unigate.charge import quota_of
from unigate.errors import InvalidRequest
from unigate.unit_prices import (
    DEFAULT_UNIT_PRICES,
    defaults_json,
    image_variant,
    parse_unit_prices,
    unit_price_for,
    unit_quota,
)
from unigate.v1 import auth_pb2, common_pb2
from unigate_gateway.requests import check_single_fields, parse_images, parse_rerank, parse_speech
from unigate_relay.providers.openai.usage import usage_from_answer, usage_object

QUOTA_PER_USD = 500_000


def test_list_prices_in_quota_units() -> None:
    # whisper-1 0.006 USD a minute, tts-1 15 USD per 1M characters, a standard 1024x1024
    # dall-e-3 image 0.04 USD, a Cohere search unit 0.002 USD.
    whisper = unit_price_for("whisper-1", "audio.transcriptions", "")
    assert whisper == ("second", Fraction(6, 1000) / 60)
    assert unit_quota(61, whisper[1], 1.0) == 61 * 50
    tts = unit_price_for("tts-1", "audio.speech", "")
    assert tts is not None and unit_quota(7, tts[1], 1.0) == math.ceil(Fraction(7 * 15, 2))
    hd = unit_price_for("dall-e-3", "images.generations", "1792x1024/hd")
    assert hd == ("image", Fraction(12, 100))
    assert unit_quota(2, hd[1], 1.0) == 120_000
    rerank = unit_price_for("rerank-english-v3.0", "rerank", "")
    assert rerank is not None and unit_quota(3, rerank[1], 1.0) == 3_000


def test_group_ratio_and_rounding_are_exact() -> None:
    # 0.1 is the decimal the operator wrote, not the binary float: 7.5 x 3 x 0.1 = 2.25 -> 3.
    assert unit_quota(3, Fraction("0.000015"), 0.1) == 3
    assert unit_quota(1, Fraction("0.0001"), 1.5) == 75
    assert unit_quota(0, Fraction("0.0001"), 1.0) == 0
    assert unit_quota(1, Fraction(0), 1.0) == 0
    # A paid unit never rounds down to nothing.
    assert unit_quota(1, Fraction(1, 10**9), 1.0) == 1


def test_lookup_falls_back_to_the_endpoints_reference_and_the_dearest_variant() -> None:
    assert unit_price_for("my-whisper", "audio.translations", "") == unit_price_for(
        "whisper-1", "audio.translations", ""
    )
    # A size DALL-E 2 does not make: the dearest of its prices (the provider will refuse).
    assert unit_price_for("dall-e-2", "images.generations", "1792x1024/hd") == (
        "image",
        Fraction("0.02"),
    )
    assert unit_price_for("gpt-4o-mini", "chat.completions", "") is None
    assert unit_price_for("gpt-4o-mini-transcribe", "chat.completions", "") is None


def test_the_option_overrides_per_model() -> None:
    table = parse_unit_prices(
        '{"whisper-1": {"unit": "second", "usd": 0.0002},'
        ' "dall-e-3": {"unit": "image", "usd": {"1024x1024/standard": "0.05"}}}'
    )
    assert unit_price_for("whisper-1", "audio.transcriptions", "", table) == (
        "second",
        Fraction(2, 10_000),
    )
    assert unit_price_for("dall-e-3", "images.generations", "1024x1024/standard", table) == (
        "image",
        Fraction(5, 100),
    )
    assert unit_price_for("tts-1", "audio.speech", "", table) == ("character", Fraction(15, 10**6))


@pytest.mark.parametrize(
    "raw",
    [
        "[1]",
        "{",
        '{"m": 1}',
        '{"m": {"unit": "token", "usd": 1}}',
        '{"m": {"unit": "second"}}',
        '{"m": {"unit": "second", "usd": -1}}',
        '{"m": {"unit": "second", "usd": "cheap"}}',
        '{"m": {"unit": "image", "usd": {}}}',
        '{"m": {"unit": "second", "usd": true}}',
    ],
)
def test_a_malformed_option_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_unit_prices(raw)


def test_the_console_shows_the_table_in_the_options_format() -> None:
    assert parse_unit_prices(defaults_json()) == DEFAULT_UNIT_PRICES
    assert orjson.loads(defaults_json())["whisper-1"] == {"unit": "second", "usd": "0.0001"}


def _pricing(model: str, endpoint: str, variant: str = "") -> auth_pb2.Pricing:
    unit = unit_price_for(model, endpoint, variant)
    assert unit is not None
    return auth_pb2.Pricing(
        model_ratio=1.0,
        completion_ratio=1.0,
        group_ratio=1.0,
        unit=unit[0],
        unit_price=str(unit[1]),
    )


def test_charge_prices_units_only_in_the_models_unit() -> None:
    pricing = _pricing("whisper-1", "audio.transcriptions")
    assert quota_of(pricing, common_pb2.Usage(unit="second", quantity=9)) == 450
    # gpt-4o-transcribe reports tokens: priced by them, audio input at its own ratio.
    tokens = auth_pb2.Pricing(
        model_ratio=1.25, completion_ratio=4.0, group_ratio=1.0, audio_ratio=2.4, unit="second"
    )
    usage = common_pb2.Usage(prompt_tokens=110, audio_tokens=100, completion_tokens=10)
    assert quota_of(tokens, usage) == math.ceil((10 + 100 * Fraction(24, 10) + 40) * Fraction(5, 4))


def test_usage_in_the_providers_units() -> None:
    assert usage_object({"type": "duration", "seconds": 9}) == common_pb2.Usage(
        unit="second", quantity=9
    )
    assert usage_object({"type": "duration", "seconds": 2.2}).quantity == 3  # type: ignore[union-attr]
    transcribe = usage_object(
        {
            "type": "tokens",
            "input_tokens": 30,
            "input_token_details": {"text_tokens": 5, "audio_tokens": 25},
            "output_tokens": 8,
            "total_tokens": 38,
        }
    )
    assert transcribe is not None
    assert (transcribe.prompt_tokens, transcribe.audio_tokens, transcribe.unit) == (30, 25, "")
    speech = usage_from_answer(
        "audio.speech", b'{"input": "H\\u00e9llo", "voice": "alloy"}', "audio/mpeg", b"ID3"
    )
    assert (speech.unit, speech.quantity, speech.prompt_tokens) == ("character", 5, 0)
    images = usage_from_answer(
        "images.generations",
        b'{"prompt": "x", "n": 3}',
        "application/json",
        b'{"created": 1, "data": [{"url": "a"}, {"url": "b"}]}',
    )
    assert (images.unit, images.quantity) == ("image", 2)  # what was delivered
    rerank = usage_from_answer(
        "rerank",
        b"{}",
        "application/json",
        b'{"results": [], "meta": {"billed_units": {"search_units": 2}},'
        b' "usage": {"total_tokens": 40}}',
    )
    assert (rerank.unit, rerank.quantity, rerank.prompt_tokens) == ("search_unit", 2, 40)


def _form(fields: list[tuple[str, str]], file: bytes, filename: str) -> tuple[bytes, str]:
    boundary = "unitsboundary"
    out = b""
    for name, value in fields:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    out += file + f"\r\n--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("extension", ["wav", *FORMATS])
def test_a_translation_is_billed_the_seconds_of_its_file(extension: str) -> None:
    audio = encoded_file(extension, 2.5)
    seconds = audio_seconds(audio)
    assert seconds is not None and Fraction(5, 2) <= seconds < Fraction(26, 10)
    body, content_type = _form([("model", "whisper-1")], audio, f"clip.{extension}")
    usage = usage_from_answer(
        "audio.translations",
        body,
        "application/json",
        b'{"text": "Translated"}',
        request_content_type=content_type,
    )
    assert (usage.unit, usage.quantity, usage.prompt_tokens, usage.estimated) == (
        "second",
        3,
        0,
        True,
    )


def test_what_is_not_audio_has_no_duration() -> None:
    assert audio_seconds(b"OggS not really") is None
    assert audio_seconds(b"") is None


def test_a_repeated_single_valued_field_is_refused() -> None:
    check_single_fields(["model", "file", "timestamp_granularities[]", "timestamp_granularities[]"])
    with pytest.raises(InvalidRequest) as refused:
        check_single_fields(["model", "file", "model"])
    assert (refused.value.status, refused.value.param) == (400, "model")


def test_the_gateway_counts_units_for_the_reservation() -> None:
    images = parse_images(b'{"model": "dall-e-3", "prompt": "x", "quality": "hd", "n": 2}')
    assert (images.estimated_units, images.price_variant) == (2, "1024x1024/hd")
    assert image_variant(None, None) == "1024x1024/standard"
    assert parse_speech(b'{"model": "tts-1", "input": "abc", "voice": "x"}').estimated_units == 3
    docs = orjson.dumps({"model": "r", "query": "q", "documents": ["d"] * 101})
    assert parse_rerank(docs).estimated_units == 2
