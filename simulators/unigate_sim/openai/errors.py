"""``OpenAIError`` and builders of the exact 400 errors OpenAI answers to malformed requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unigate_sim.openai.json_types import JSONObject


class OpenAIError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> JSONObject:
        """The JSON body OpenAI would send for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 ``invalid_request_error``."""
    return OpenAIError(400, message, param=param, code=code)


def _describe(value: Any) -> str:
    """How OpenAI names a JSON value's type in "but got ... instead" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _quoted_list(values: Sequence[str]) -> str:
    """``'a', 'b', and 'c'`` — the way OpenAI lists supported values."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {_describe(value)} instead.",
        param,
        "invalid_type",
    )


def missing(param: str) -> OpenAIError:
    return bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def invalid_value(param: str, value: str, supported: Sequence[str]) -> OpenAIError:
    return bad_request(
        f"Invalid value: '{value}'. Supported values are: {_quoted_list(supported)}.",
        param,
        "invalid_value",
    )


def unknown_parameter(param: str) -> OpenAIError:
    return bad_request(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def empty_array(param: str) -> OpenAIError:
    return bad_request(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param,
        "empty_array",
    )


def array_too_long(param: str, maximum: int, length: int) -> OpenAIError:
    return bad_request(
        f"Invalid '{param}': array too long. Expected an array with maximum length "
        f"{maximum}, but got an array with length {length} instead.",
        param,
        "array_above_max_length",
    )


def below_minimum(param: str, kind: str, value: float, minimum: float) -> OpenAIError:
    return bad_request(
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, "
        f"but got {value} instead.",
        param,
        f"{kind}_below_min_value",
    )


def above_maximum(param: str, kind: str, value: float, maximum: float) -> OpenAIError:
    return bad_request(
        f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, "
        f"but got {value} instead.",
        param,
        f"{kind}_above_max_value",
    )


def string_too_long(param: str, maximum: int, length: int) -> OpenAIError:
    return bad_request(
        f"Invalid '{param}': string too long. Expected a string with maximum length "
        f"{maximum}, but got a string with length {length} instead.",
        param,
        "string_above_max_length",
    )
