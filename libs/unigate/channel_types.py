"""Channel types (One API's numbers) and the relay family that serves each.

A family is one relay deployment (``unigate-relay --providers openai``); the gateway sends a
call to the relay of the candidate channel's family.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelType:
    id: int
    name: str
    family: str
    default_base_url: str


CHANNEL_TYPES: dict[int, ChannelType] = {
    t.id: t
    for t in (
        ChannelType(1, "OpenAI", "openai", "https://api.openai.com"),
        ChannelType(8, "OpenAI-compatible", "openai", ""),
    )
}


def channel_type(type_id: int) -> ChannelType | None:
    return CHANNEL_TYPES.get(type_id)
