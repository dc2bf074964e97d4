"""Reading values out of a provider's decoded JSON, whatever it sent: an object where one is
expected, and a count (tokens, units) where one is reported."""

from __future__ import annotations

import math
from typing import Any


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int:
    """A reported count: a whole non-negative number (a float is cut to its whole part);
    anything else, a boolean or a negative number included, is 0 — a count billed by can
    never credit the client."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(int(value), 0)
