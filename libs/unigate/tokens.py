"""Cheap token estimates, for reservations and for providers that report no usage.

These are deliberately simple and fast; the ledger marks rows counted this way as estimated.
"""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def estimate_text_tokens(text: str) -> int:
    """About one token per CJK character and per four other characters."""
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return cjk + max((len(text) - cjk + 3) // 4, 0)


def estimate_body_tokens(body_size: int) -> int:
    """Upper-bound-ish estimate of a JSON request's prompt tokens from its size alone."""
    return max(body_size // 3, 1)
