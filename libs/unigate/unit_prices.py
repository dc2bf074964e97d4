"""Prices of calls that providers bill in units other than tokens.

OpenAI bills whisper-1 per second of audio (0.006 USD a minute), tts-1 / tts-1-hd per input
character (15 / 30 USD per 1M), DALL-E per image by size and quality; Cohere bills rerank per
search unit (one query over up to 100 documents, 2 USD per 1,000). Such a model's price is
USD per unit, kept as an exact fraction, beside the token ratios of ``pricing`` in the same
price table: built-in defaults here, overridden per model by the ``UnitPrice`` option, e.g.
``{"whisper-1": {"unit": "second", "usd": "0.0001"},
"dall-e-3": {"unit": "image", "usd": {"1024x1024/hd": 0.08}}}``. A cost is
quantity x USD x 500,000 quota units x group ratio, computed in fractions and rounded up once.

Models whose provider reports token usage (gpt-4o-transcribe, gpt-image-1) are priced per
token, as the provider bills them, and have no entry here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

from unigate.pricing import QUOTA_PER_USD

SECOND = "second"
CHARACTER = "character"
IMAGE = "image"
SEARCH_UNIT = "search_unit"
UNITS = (SECOND, CHARACTER, IMAGE, SEARCH_UNIT)

# An image price's variant: "<size>/<quality>". OpenAI's defaults when the request names none.
DEFAULT_IMAGE_SIZE = "1024x1024"
DEFAULT_IMAGE_QUALITY = "standard"


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """USD per ``unit``, by variant ("" = every call of the model)."""

    unit: str
    usd: dict[str, Fraction]

    def usd_for(self, variant: str) -> Fraction:
        """The variant's price; a variant the table lacks (a size the provider will refuse,
        or a new one) costs the dearest of the model's, so a reservation never falls short."""
        if variant in self.usd:
            return self.usd[variant]
        return self.usd.get("", max(self.usd.values()))


def _usd(value: str) -> Fraction:
    return Fraction(value)


def _flat(unit: str, usd: str) -> UnitPrice:
    return UnitPrice(unit, {"": _usd(usd)})


def _images(by_variant: dict[str, str]) -> UnitPrice:
    return UnitPrice(IMAGE, {k: _usd(v) for k, v in by_variant.items()})


# OpenAI's and Cohere's list prices.
DEFAULT_UNIT_PRICES: dict[str, UnitPrice] = {
    # 0.006 USD a minute.
    "whisper-1": _flat(SECOND, "0.0001"),
    # 15 and 30 USD per 1M characters. gpt-4o-mini-tts bills tokens (0.60 USD per 1M text in,
    # 12 per 1M audio out), but an audio answer reports none; OpenAI puts it at about 0.015 USD
    # a minute, tts-1's price, so it is priced per character as tts-1 is.
    "tts-1": _flat(CHARACTER, "0.000015"),
    "tts-1-hd": _flat(CHARACTER, "0.00003"),
    "gpt-4o-mini-tts": _flat(CHARACTER, "0.000015"),
    "dall-e-2": _images(
        {"256x256/standard": "0.016", "512x512/standard": "0.018", "1024x1024/standard": "0.02"}
    ),
    "dall-e-3": _images(
        {
            "1024x1024/standard": "0.04",
            "1024x1792/standard": "0.08",
            "1792x1024/standard": "0.08",
            "1024x1024/hd": "0.08",
            "1024x1792/hd": "0.12",
            "1792x1024/hd": "0.12",
        }
    ),
    # Cohere: 2 USD per 1,000 searches.
    "rerank-v3.5": _flat(SEARCH_UNIT, "0.002"),
    "rerank-english-v3.0": _flat(SEARCH_UNIT, "0.002"),
    "rerank-multilingual-v3.0": _flat(SEARCH_UNIT, "0.002"),
}

# A model the table does not know, on an endpoint that bills per unit, is priced as the
# endpoint's reference model (so a channel's own model name never makes a call free).
ENDPOINT_REFERENCE = {
    "audio.transcriptions": "whisper-1",
    "audio.translations": "whisper-1",
    "audio.speech": "tts-1",
    "images.generations": "dall-e-2",
    "rerank": "rerank-v3.5",
}


def image_variant(size: object, quality: object) -> str:
    """The price variant of an image request (DALL-E's "standard" quality unless "hd")."""
    s = size if isinstance(size, str) and size and size != "auto" else DEFAULT_IMAGE_SIZE
    q = quality if isinstance(quality, str) and quality and quality != "auto" else "standard"
    return f"{s}/{q}"


def parse_unit_prices(raw: str | None) -> dict[str, UnitPrice]:
    """The ``UnitPrice`` option: ``{model: {"unit": ..., "usd": price or {variant: price}}}``;
    prices are numbers or decimal strings. Raises ValueError when it is not that."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"UnitPrice is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("UnitPrice must be a JSON object of models")
    return {str(model): _entry(str(model), entry) for model, entry in value.items()}


def _price(model: str, value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"UnitPrice of {model}: a price is a number of USD")
    try:
        # repr: the decimal the operator wrote (0.1 is 1/10, not the nearest binary float).
        price = Fraction(value if isinstance(value, str) else repr(value))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"UnitPrice of {model}: {value!r} is not a number") from None
    if price < 0:
        raise ValueError(f"UnitPrice of {model}: a price cannot be negative")
    return price


def _entry(model: str, entry: Any) -> UnitPrice:
    if not isinstance(entry, dict) or entry.get("unit") not in UNITS or "usd" not in entry:
        raise ValueError(
            f'UnitPrice of {model}: expected {{"unit": one of {", ".join(UNITS)}, "usd": ...}}'
        )
    usd = entry["usd"]
    if isinstance(usd, dict):
        if not usd:
            raise ValueError(f"UnitPrice of {model}: no prices")
        prices = {str(k): _price(model, v) for k, v in usd.items()}
    else:
        prices = {"": _price(model, usd)}
    return UnitPrice(str(entry["unit"]), prices)


def _decimal(value: Fraction) -> str:
    """A price as the operator would type it: a decimal when it has one, else "n/d"."""
    d = Decimal(value.numerator) / Decimal(value.denominator)
    return format(d.normalize(), "f") if Fraction(d) == value else str(value)


def defaults_json() -> str:
    """The built-in table in the option's format (what the console shows before any edit)."""
    table = {
        model: {
            "unit": p.unit,
            "usd": _decimal(p.usd[""])
            if list(p.usd) == [""]
            else {k: _decimal(v) for k, v in p.usd.items()},
        }
        for model, p in DEFAULT_UNIT_PRICES.items()
    }
    return orjson.dumps(table).decode()


def unit_price_for(
    model: str, endpoint: str, variant: str, overrides: dict[str, UnitPrice] | None = None
) -> tuple[str, Fraction] | None:
    """(unit, USD per unit) of ``model`` on ``endpoint``: the UnitPrice option's, else the
    built-in one, else the endpoint's reference model's; None when priced per token."""
    table = overrides or {}
    found = table.get(model) or DEFAULT_UNIT_PRICES.get(model)
    if found is None and endpoint in ENDPOINT_REFERENCE:
        reference = ENDPOINT_REFERENCE[endpoint]
        found = table.get(reference) or DEFAULT_UNIT_PRICES.get(reference)
    if found is None:
        return None
    return found.unit, found.usd_for(variant)


def unit_quota(quantity: int, usd_per_unit: Fraction, group_ratio: float) -> int:
    """Quota for ``quantity`` units: exact, rounded up once; never 0 for a paid unit used."""
    if quantity <= 0 or usd_per_unit <= 0 or group_ratio <= 0:
        return 0
    exact = quantity * usd_per_unit * QUOTA_PER_USD * Fraction(repr(group_ratio))
    return max(math.ceil(exact), 1)
