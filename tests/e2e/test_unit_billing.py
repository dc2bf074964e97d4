"""Calls billed in units other than tokens, through the whole stack with the ``openai`` SDK
against the OpenAI simulator: whisper-1 per reported second, translations per second read
from real WAV / MP3 / OGG / FLAC / M4A / WebM files, speech per input character, images per
image by model, size and quality, rerank per Cohere search unit, and the models that report
tokens (gpt-4o-mini-transcribe with audio tokens, gpt-image-1) by their tokens. Each row's
quota is checked as an exact fraction of the list prices written here, and so is the
reservation. A multipart body with a repeated ``model`` is refused before it reaches anyone."""

from __future__ import annotations

import csv
import io
import math
import re
from fractions import Fraction
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest
from playwright.async_api import Browser, expect

from tests import admin_writes
from tests.audio_files import encoded_file, wav_file
from tests.e2e.conftest import SIM_KEY, Tenant, ThreadedServer
from tests.e2e.test_console import CHROMIUM, _wait_for_log_row, browser
from tests.e2e.test_management_api import ROOT_PASSWORD, Api, apis, root
from tests.e2e.test_walking_skeleton import wait_for_rows
from unigate_cli.devstack import Stack

__all__ = ["apis", "browser", "root"]  # fixtures used here

QUOTA_PER_USD = 500_000
# OpenAI's and Cohere's list prices, in USD per unit.
WHISPER_PER_SECOND = Fraction("0.006") / 60
TTS_PER_CHARACTER = {
    "tts-1": Fraction(15, 10**6),
    "tts-1-hd": Fraction(30, 10**6),
    "gpt-4o-mini-tts": Fraction(15, 10**6),
}
IMAGE_PRICES = {
    ("dall-e-2", "256x256", "standard"): Fraction("0.016"),
    ("dall-e-2", "512x512", "standard"): Fraction("0.018"),
    ("dall-e-2", "1024x1024", "standard"): Fraction("0.02"),
    ("dall-e-3", "1024x1024", "standard"): Fraction("0.04"),
    ("dall-e-3", "1792x1024", "standard"): Fraction("0.08"),
    ("dall-e-3", "1024x1024", "hd"): Fraction("0.08"),
    ("dall-e-3", "1024x1792", "hd"): Fraction("0.12"),
}
SEARCH_UNIT = Fraction(2, 1000)
# Token prices, USD per 1M: gpt-4o-mini-transcribe 1.25 text in, 3 audio in, 5 out;
# gpt-image-1 5 text in, 40 image out.
MINI_TRANSCRIBE = (Fraction("1.25"), Fraction(3), Fraction(5))
GPT_IMAGE = (Fraction(5), Fraction(40))

MODELS = (
    "whisper-1,my-whisper,gpt-4o-mini-transcribe,tts-1,tts-1-hd,gpt-4o-mini-tts,dall-e-2,"
    "dall-e-3,gpt-image-1,rerank-english-v3.0"
)


def quota(usd: Fraction) -> int:
    return math.ceil(usd * QUOTA_PER_USD)


@pytest.fixture(scope="module")
async def units_channel(pg: asyncpg.Pool, secret_key: str, simulator: ThreadedServer) -> int:
    return await admin_writes.create_channel(
        pg,
        secret_key=secret_key,
        type=1,
        name="units",
        key=SIM_KEY,
        base_url=simulator.url,
        models=MODELS,
        model_mapping={"my-whisper": "whisper-1"},
    )


@pytest.fixture
def sdk(stack: Stack, tenant: Tenant, units_channel: int) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=tenant.key, base_url=stack.gateway_url + "/v1", max_retries=0, timeout=60
    )


async def rows_of(pg: asyncpg.Pool, tenant: Tenant, count: int) -> list[asyncpg.Record]:
    await wait_for_rows(pg, tenant.token_id, count)
    rows: list[asyncpg.Record] = await pg.fetch(
        "SELECT * FROM logs WHERE token_id = $1 ORDER BY id", tenant.token_id
    )
    assert len(rows) == count
    return rows


def billed(row: asyncpg.Record) -> tuple[str, int, int, int]:
    """(unit, quantity, quota, reserved quota) of a ledger row."""
    return row["unit"], row["quantity"], row["quota"], row["reserved_quota"]


async def test_whisper_is_billed_the_seconds_it_reports(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    audio = wav_file(4.2)
    verbose = await sdk.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("talk.wav", audio, "audio/wav"), response_format="verbose_json"
    )
    reported = orjson.loads(verbose.content)["usage"]
    assert reported == {"type": "duration", "seconds": 5}
    # Asked for text, the answer carries no usage: the seconds are read from the file.
    text = await sdk.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", audio, "audio/wav"), response_format="text"
    )
    assert "talk.wav" in str(text)
    first, second = await rows_of(pg, tenant, 2)
    cost = quota(5 * WHISPER_PER_SECOND)
    assert cost == 250
    # Reserved on the file's seconds, charged on the provider's.
    assert billed(first) == ("second", 5, cost, cost) and not first["estimated"]
    assert Fraction(first["unit_price"]) == WHISPER_PER_SECOND
    assert billed(second) == ("second", 5, cost, cost) and second["estimated"]
    assert (first["prompt_tokens"], first["completion_tokens"]) == (0, 0)


@pytest.mark.parametrize("extension", ["wav", "mp3", "ogg", "flac", "m4a", "webm"])
async def test_a_translation_is_billed_the_seconds_of_its_file(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant, extension: str
) -> None:
    audio = encoded_file(extension, 7.5)  # 7.5 s of sound: 8 whole seconds
    translated = await sdk.audio.translations.with_raw_response.create(
        model="my-whisper", file=(f"clip.{extension}", audio)
    )
    assert "usage" not in orjson.loads(translated.content)  # a translation reports none
    (row,) = await rows_of(pg, tenant, 1)
    cost = quota(8 * WHISPER_PER_SECOND)
    assert billed(row) == ("second", 8, cost, cost) and row["estimated"]
    assert row["upstream_model"] == "whisper-1" and row["prompt_tokens"] == 0


async def test_token_transcription_models_are_billed_their_tokens(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    answer = await sdk.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-mini-transcribe", file=("hello.wav", wav_file(3.3)), prompt="names: Ada"
    )
    usage = orjson.loads(answer.content)["usage"]
    text_in = usage["input_token_details"]["text_tokens"]
    audio_in = usage["input_token_details"]["audio_tokens"]
    assert usage["input_tokens"] == text_in + audio_in and audio_in > 0
    (row,) = await rows_of(pg, tenant, 1)
    text_usd, audio_usd, out_usd = MINI_TRANSCRIBE
    usd = (text_in * text_usd + audio_in * audio_usd + usage["output_tokens"] * out_usd) / 10**6
    assert (row["unit"], row["prompt_tokens"], row["completion_tokens"]) == (
        "",
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert row["quota"] == quota(usd) and not row["estimated"]


async def test_speech_is_billed_per_input_character(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    texts = {
        "tts-1": "Hello from the gateway.",
        "tts-1-hd": "Grüße, 世界! " * 7,
        "gpt-4o-mini-tts": "One more sentence to read aloud",
    }
    for model, text in texts.items():
        speech = await sdk.audio.speech.create(model=model, voice="alloy", input=text)
        assert len(speech.read()) > 0
    rows = await rows_of(pg, tenant, len(texts))
    for row, (model, text) in zip(rows, texts.items(), strict=True):
        cost = quota(len(text) * TTS_PER_CHARACTER[model])
        assert row["model_name"] == model
        assert billed(row) == ("character", len(text), cost, cost)


async def test_images_are_billed_per_image_by_model_size_and_quality(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    calls: list[tuple[str, str, str, int]] = [
        ("dall-e-2", "256x256", "standard", 3),
        ("dall-e-2", "512x512", "standard", 2),
        ("dall-e-2", "1024x1024", "standard", 1),
        ("dall-e-3", "1024x1024", "standard", 1),
        ("dall-e-3", "1792x1024", "standard", 1),
        ("dall-e-3", "1024x1024", "hd", 1),
        ("dall-e-3", "1024x1792", "hd", 1),
    ]
    for model, size, quality, n in calls:
        options: dict[str, Any] = {} if model == "dall-e-2" else {"quality": quality}
        image = await sdk.images.generate(
            model=model,
            prompt="a red square",
            size=size,  # type: ignore[arg-type]
            n=n,
            **options,
        )
        assert image.data is not None and len(image.data) == n
    rows = await rows_of(pg, tenant, len(calls))
    for row, (model, size, quality, n) in zip(rows, calls, strict=True):
        cost = quota(n * IMAGE_PRICES[(model, size, quality)])
        assert (row["model_name"], *billed(row)) == (model, "image", n, cost, cost)


async def test_gpt_image_1_is_billed_the_tokens_it_reports(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    image = await sdk.images.generate(
        model="gpt-image-1", prompt="a blue circle", size="1536x1024", quality="low", n=2
    )
    assert image.usage is not None and image.data is not None and len(image.data) == 2
    (row,) = await rows_of(pg, tenant, 1)
    text_usd, out_usd = GPT_IMAGE
    usd = (image.usage.input_tokens * text_usd + image.usage.output_tokens * out_usd) / 10**6
    assert (row["unit"], row["completion_tokens"]) == ("", image.usage.output_tokens)
    assert row["quota"] == quota(usd)


async def test_rerank_is_billed_per_search_unit(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant
) -> None:
    documents = [f"document number {i} about red apples" for i in range(250)]
    result = await sdk.post(
        "/rerank",
        cast_to=object,
        body={"model": "rerank-english-v3.0", "query": "red apples", "documents": documents},
    )
    assert isinstance(result, dict)
    assert result["meta"]["billed_units"] == {"search_units": 3}  # Cohere: 100 documents each
    (row,) = await rows_of(pg, tenant, 1)
    cost = quota(3 * SEARCH_UNIT)
    assert billed(row) == ("search_unit", 3, cost, cost)


async def test_the_log_api_and_csv_show_the_unit(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant, root: Api
) -> None:
    await sdk.audio.speech.create(model="tts-1", voice="alloy", input="twelve chars")
    (row,) = await rows_of(pg, tenant, 1)
    listed = await root.ok("GET", "/log/", params={"request_id": row["request_id"]})
    items = listed["items"] if isinstance(listed, dict) and "items" in listed else listed
    assert [(r["unit"], r["quantity"], r["quota"]) for r in items] == [
        ("character", 12, quota(12 * TTS_PER_CHARACTER["tts-1"]))
    ]
    export = await root.raw("GET", "/log/export", params={"request_id": row["request_id"]})
    assert export.status_code == 200, export.text
    (exported,) = list(csv.DictReader(io.StringIO(export.text, newline="")))
    assert (exported["unit"], exported["quantity"]) == ("character", "12")


async def test_the_unit_price_option_prices_the_next_call(
    sdk: openai.AsyncOpenAI, pg: asyncpg.Pool, tenant: Tenant, root: Api
) -> None:
    options = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
    shown = options["UnitPrice"]
    table = orjson.loads(shown)  # the built-in table, shown as in force
    assert table["whisper-1"] == {"unit": "second", "usd": "0.0001"}
    table["whisper-1"] = {"unit": "second", "usd": "0.00017"}
    try:
        bad = await root.raw(
            "PUT", "/option/", json={"key": "UnitPrice", "value": '{"whisper-1": {"unit": 1}}'}
        )
        assert bad.status_code == 200 and bad.json()["success"] is False
        await root.ok(
            "PUT", "/option/", json={"key": "UnitPrice", "value": orjson.dumps(table).decode()}
        )
        await sdk.audio.translations.create(
            model="whisper-1", file=("a.mp3", encoded_file("mp3", 2.5))
        )
        (row,) = await rows_of(pg, tenant, 1)
        assert billed(row)[:3] == ("second", 3, quota(3 * Fraction("0.00017")))
    finally:
        # The table as it was (the built-in prices) for the tests after this one.
        await root.ok("PUT", "/option/", json={"key": "UnitPrice", "value": shown})


async def test_a_repeated_model_field_is_refused_before_anyone_sees_it(
    stack: Stack, pg: asyncpg.Pool, units_channel: int, sim_app: Any
) -> None:
    # The key may use whisper-1 only; the provider would read the first model.
    token = await admin_writes.create_token(
        pg, user_id=1, name="whisper only", unlimited_quota=True, models="whisper-1"
    )
    calls_before = len(sim_app.state.calls)
    form = {"model": ["gpt-4o-mini-transcribe", "whisper-1"]}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        answer = await http.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {token.key}"},
            data=form,
            files={"file": ("a.wav", wav_file(1.0), "audio/wav")},
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            "model",
            "duplicate_parameter",
        )
        # The same with one model is fine: the refusal was the repetition.
        allowed = await http.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {token.key}"},
            data={"model": "whisper-1"},
            files={"file": ("a.wav", wav_file(1.0), "audio/wav")},
        )
        assert allowed.status_code == 200, allowed.text
    assert len(sim_app.state.calls) == calls_before + 1
    await wait_for_rows(pg, token.id, 1)
    assert await pg.fetchval("SELECT count(*) FROM logs WHERE token_id = $1", token.id) == 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing")
async def test_the_console_shows_units_and_edits_their_prices(
    sdk: openai.AsyncOpenAI,
    pg: asyncpg.Pool,
    tenant: Tenant,
    stack: Stack,
    browser: Browser,
    root: Api,
) -> None:
    await sdk.audio.speech.create(model="tts-1", voice="alloy", input="twelve chars")
    (row,) = await rows_of(pg, tenant, 1)
    shown = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}["UnitPrice"]
    context = await browser.new_context(locale="en-US")
    try:
        page = await context.new_page()
        await page.goto(stack.gateway_url + "/")
        await page.fill('input[name="username"]', "root")
        await page.fill('input[name="password"]', ROOT_PASSWORD)
        await page.click('button[type="submit"]')
        await expect(page.locator("nav.sidebar")).to_be_visible()
        # The log view: the call's characters under its tokens.
        await page.click('nav a[data-nav="logs"]')
        log_row = await _wait_for_log_row(page, row["request_id"])
        await expect(log_row.get_by_test_id("units")).to_have_text("12 characters")
        # The settings: the price table in force, edited and saved like any price option.
        await page.click('nav a[data-nav="settings"]')
        option = page.locator('[data-option="UnitPrice"]')
        editor = option.locator("textarea")
        await expect(editor).to_have_value(re.compile(r'"whisper-1": \{\s*"unit": "second"'))
        table = orjson.loads(await editor.input_value())
        table["tts-1"] = {"unit": "character", "usd": "0.00002"}
        await editor.fill(orjson.dumps(table).decode())
        await option.locator('button[type="submit"]').click()
        await expect(page.locator(".toast-success").last).to_be_visible()
        stored = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}["UnitPrice"]
        assert orjson.loads(stored)["tts-1"] == {"unit": "character", "usd": "0.00002"}
        await sdk.audio.speech.create(model="tts-1", voice="alloy", input="twelve chars")
        second = (await rows_of(pg, tenant, 2))[1]
        assert billed(second)[:3] == ("character", 12, quota(12 * Fraction("0.00002")))
    finally:
        await context.close()
        await root.ok("PUT", "/option/", json={"key": "UnitPrice", "value": shown})
