"""Channel types (One API's numbers): which relay family serves each, and what each provider
package declares about itself (default base URL, key format, balance API, ``gen_ai.system``,
models).

A family is one relay deployment (``unigate-relay --providers openai``); the gateway sends a
call to the relay of the candidate channel's family. The facts belong to the relay's provider
packages (``unigate_relay.providers.*.declaration``); ``make providers`` writes them into
``provider_catalog.json`` next to this module, which this module reads, so auth, the console
and telemetry know every registered provider without importing the relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from unigate.provider_facts import BalanceApi

__all__ = [
    "CATALOG_PATH",
    "CHANNEL_TYPES",
    "PROTOCOL_VARIANTS",
    "BalanceApi",
    "ChannelType",
    "balance_types",
    "channel_type",
    "install_catalog",
    "read_catalog",
    "routed_type",
    "speaks_websocket",
]

CATALOG_PATH = Path(__file__).with_name("provider_catalog.json")


@dataclass(frozen=True, slots=True)
class ChannelType:
    id: int
    name: str
    family: str
    # Its provider is called over WebSocket (its base URL may be ws:// or wss://).
    websocket: bool = False
    # Used when a channel's base URL is empty ("" = the channel must give one, unless
    # ``base_url_hint`` says how the relay derives it from the channel's config).
    base_url: str = ""
    base_url_hint: str = ""
    # The console's key field: placeholder, loose check (JavaScript RegExp source), parts
    # joined with "|", and what the channel's config JSON may hold.
    key_hint: str = "API key"
    key_pattern: str = ""
    key_parts: tuple[str, ...] = ()
    # The key is one JSON object with these fields (a service-account file).
    key_json_fields: tuple[str, ...] = ()
    config_hint: str = ""
    balance: BalanceApi | None = None
    gen_ai_system: str = ""
    models: tuple[str, ...] = ()
    # An internal routing variant (id >= 1000) of (type, protocol).
    variant_of: tuple[int, str] | None = None


def _channel_type(entry: dict[str, Any]) -> ChannelType:
    balance = entry["balance"]
    variant = entry["variant_of"]
    return ChannelType(
        id=int(entry["id"]),
        name=str(entry["name"]),
        family=str(entry["family"]),
        websocket=bool(entry["websocket"]),
        base_url=str(entry["base_url"]),
        base_url_hint=str(entry.get("base_url_hint", "")),
        key_hint=str(entry["key_hint"]),
        key_pattern=str(entry["key_pattern"]),
        key_parts=tuple(entry["key_parts"]),
        key_json_fields=tuple(entry.get("key_json_fields", ())),
        config_hint=str(entry["config_hint"]),
        balance=BalanceApi(**balance) if balance else None,
        gen_ai_system=str(entry["gen_ai_system"]),
        models=tuple(entry["models"]),
        variant_of=(int(variant[0]), str(variant[1])) if variant else None,
    )


def read_catalog(path: Path) -> dict[int, ChannelType]:
    """The channel types of a catalog file, by id."""
    entries = orjson.loads(path.read_bytes())["channel_types"]
    return {t.id: t for t in map(_channel_type, entries)}


CHANNEL_TYPES: dict[int, ChannelType] = {}

# A One API type whose channels may speak another protocol, chosen by the channel's config
# ``{"protocol": "..."}``: (type, protocol) -> the internal type (>= 1000, numbers One API
# does not use) that names the family serving it. Type 17 stays on DashScope's
# OpenAI-compatible mode unless its config says ``"native"``.
PROTOCOL_VARIANTS: dict[tuple[int, str], int] = {}


def install_catalog(path: Path = CATALOG_PATH) -> None:
    """Load ``path`` into :data:`CHANNEL_TYPES` and :data:`PROTOCOL_VARIANTS` (in place, so
    modules that imported them see it). Done once at import; tests swap catalogs with it."""
    types = read_catalog(path)
    CHANNEL_TYPES.clear()
    CHANNEL_TYPES.update(types)
    PROTOCOL_VARIANTS.clear()
    PROTOCOL_VARIANTS.update({t.variant_of: t.id for t in types.values() if t.variant_of})


install_catalog()


def channel_type(type_id: int) -> ChannelType | None:
    return CHANNEL_TYPES.get(type_id)


def routed_type(type_id: int, protocol: str | None) -> int:
    """The type a channel is routed by: its own, or the variant its config's protocol picks."""
    return PROTOCOL_VARIANTS.get((type_id, protocol or ""), type_id)


def speaks_websocket(type_id: int) -> bool:
    """Whether channels of this type call their provider over WebSocket."""
    ct = CHANNEL_TYPES.get(type_id)
    return ct is not None and ct.websocket


def balance_types() -> list[int]:
    """The channel types whose provider publishes a balance API."""
    return sorted(t.id for t in CHANNEL_TYPES.values() if t.balance is not None)
