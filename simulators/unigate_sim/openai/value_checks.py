"""Checks of JSON values in request bodies.

Each ``as_*`` check returns the value with a precise type or raises the error OpenAI gives
for it; ``param`` is the value's path in the body, as OpenAI reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from unigate_sim.openai.errors import (
    above_maximum,
    array_too_long,
    bad_request,
    below_minimum,
    empty_array,
    invalid_type,
    invalid_value,
    missing,
    unknown_parameter,
)
from unigate_sim.openai.json_types import JSONObject


def _check_range(
    param: str, kind: str, value: float, minimum: float | None, maximum: float | None
) -> None:
    """Raise the range error for ``value`` unless it is within [minimum, maximum]."""
    if minimum is not None and value < minimum:
        raise below_minimum(param, kind, value, minimum)
    if maximum is not None and value > maximum:
        raise above_maximum(param, kind, value, maximum)


def as_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def as_int(value: Any, param: str, minimum: int | None = None, maximum: int | None = None) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    _check_range(param, "integer", value, minimum, maximum)
    return value


def as_number(value: Any, param: str, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(param, "a decimal", value)
    _check_range(param, "decimal", value, minimum, maximum)
    return float(value)


def as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def as_object(value: Any, param: str) -> JSONObject:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def as_array(
    value: Any, param: str, *, min_items: int = 0, max_items: int | None = None
) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    if min_items and not value:
        raise empty_array(param)
    if max_items is not None and len(value) > max_items:
        raise array_too_long(param, max_items, len(value))
    return value


def as_enum(value: Any, param: str, allowed: Sequence[str]) -> str:
    text = as_str(value, param)
    if text not in allowed:
        raise invalid_value(param, text, allowed)
    return text


def reject_unknown(obj: JSONObject, allowed: Iterable[str], path: str) -> None:
    """Nested objects reject unknown keys with ``unknown_parameter`` and the key's path."""
    allowed_keys = set(allowed)
    for key in obj:
        if key not in allowed_keys:
            raise unknown_parameter(f"{path}.{key}")


def as_strict_object(
    value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
) -> JSONObject:
    """A nested object with no keys beyond ``allowed`` and every key in ``required``.

    Checked in OpenAI's order: the type, then unknown keys, then missing ones.
    """
    obj = as_object(value, path)
    reject_unknown(obj, allowed, path)
    for key in required:
        if key not in obj:
            raise missing(f"{path}.{key}")
    return obj


def reject_unrecognized(obj: JSONObject, allowed: frozenset[str]) -> None:
    """Top-level unknown arguments get OpenAI's older, param-less message."""
    for key in obj:
        if key not in allowed:
            raise bad_request(f"Unrecognized request argument supplied: {key}")
