"""Tool call ids for Gemini function calls.

Gemini's ``functionCall`` usually has no id (``FunctionCall.id`` is optional, newer models
sometimes set one), while OpenAI clients need one per call to answer with. The relay makes
``call_<24 hex>`` ids, or ``call_gid_<Gemini's id>`` when Gemini gave one (sent back to Gemini
in ``functionCall.id``/``functionResponse.id``). Gemini 2.5+/3 may attach a
``thoughtSignature`` to a call that must come back with it on the next turn
(https://ai.google.dev/gemini-api/docs/thinking#signatures); OpenAI clients echo tool call ids
verbatim, so the signature rides in the id after :data:`SIGNATURE_SEPARATOR` (a character
base64 never uses).
"""

from __future__ import annotations

import secrets
from typing import Final

SIGNATURE_SEPARATOR: Final = "~ts~"
GEMINI_ID_PREFIX: Final = "call_gid_"


def tool_call_id(gemini_id: str | None, signature: str | None) -> str:
    """The OpenAI tool call id for a Gemini function call."""
    base = GEMINI_ID_PREFIX + gemini_id if gemini_id else "call_" + secrets.token_hex(12)
    return base + SIGNATURE_SEPARATOR + signature if signature else base


def parse_tool_call_id(value: str) -> tuple[str | None, str | None]:
    """(Gemini's own call id, thought signature) carried by a tool call id, each None when
    absent. Ids made by anyone else carry neither."""
    base, _, signature = value.partition(SIGNATURE_SEPARATOR)
    gemini_id = base[len(GEMINI_ID_PREFIX) :] if base.startswith(GEMINI_ID_PREFIX) else None
    return gemini_id or None, signature or None
