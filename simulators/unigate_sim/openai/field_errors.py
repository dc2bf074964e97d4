"""The 400 errors of OpenAI's audio endpoints, which validate the way FastAPI and pydantic do.

Their message is the ``repr`` of the list of every field error found, e.g.
``[{'type': 'missing', 'loc': ('body', 'file'), 'msg': 'Field required', 'input': None}]``,
with type ``invalid_request_error`` and a null ``param`` and ``code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from unigate_sim.openai.errors import bad_request

_ABSENT: Final[Any] = object()


def _choices(allowed: Sequence[str]) -> str:
    """``'a', 'b' or 'c'`` — how pydantic lists the values it expected."""
    quoted = [f"'{value}'" for value in allowed]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class FieldErrors:
    """Collects field errors, then raises them all at once as one OpenAI error."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        field: str,
        msg: str,
        value: Any = _ABSENT,
        ctx: dict[str, Any] | None = None,
    ) -> None:
        error: dict[str, Any] = {"type": kind, "loc": ("body", field), "msg": msg}
        if value is not _ABSENT:
            error["input"] = value
        if ctx is not None:
            error["ctx"] = ctx
        self.errors.append(error)

    def raise_any(self) -> None:
        """Raise the collected errors, if there are any."""
        if self.errors:
            raise bad_request(repr(self.errors))

    def missing(self, field: str, body: Any) -> None:
        self.add("missing", field, "Field required", body)

    def extra(self, field: str, value: Any) -> None:
        self.add("extra_forbidden", field, "Extra inputs are not permitted", value)

    def string(self, field: str, value: Any) -> str | None:
        """``value`` when it is a string; records a string_type error otherwise."""
        if isinstance(value, str):
            return value
        self.add("string_type", field, "Input should be a valid string", value)
        return None

    def enum(self, field: str, value: Any, allowed: Sequence[str]) -> str | None:
        """``value`` when it is one of ``allowed``; records an enum error otherwise."""
        if isinstance(value, str) and value in allowed:
            return value
        self.add("enum", field, f"Input should be {_choices(allowed)}", value)
        return None

    def number(self, field: str, value: Any, minimum: float, maximum: float) -> float | None:
        """``value`` as a float within [minimum, maximum]; numeric strings (form fields) are
        parsed, as pydantic does in lax mode."""
        number: float
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.add("float_type", field, "Input should be a valid number", value)
            return None
        if isinstance(value, int | float):
            number = float(value)
        else:
            try:
                number = float(value)
            except ValueError:
                self.add(
                    "float_parsing",
                    field,
                    "Input should be a valid number, unable to parse string as a number",
                    value,
                )
                return None
        if number < minimum:
            msg = f"Input should be greater than or equal to {minimum:g}"
            self.add("greater_than_equal", field, msg, value, {"ge": minimum})
            return None
        if number > maximum:
            msg = f"Input should be less than or equal to {maximum:g}"
            self.add("less_than_equal", field, msg, value, {"le": maximum})
            return None
        return number
