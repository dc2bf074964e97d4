"""Random ids for completions, tool calls and requests."""

from __future__ import annotations

import random
import string
from typing import Final

_ALPHANUMERIC: Final = string.ascii_letters + string.digits
# Ids only need to be unique, not unguessable; a plain PRNG is much cheaper under load.
_id_random: Final = random.Random()


def random_id(prefix: str, length: int) -> str:
    """``prefix`` followed by ``length`` random letters and digits."""
    return prefix + "".join(_id_random.choices(_ALPHANUMERIC, k=length))
